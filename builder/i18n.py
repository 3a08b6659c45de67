"""Interface languages: Vietnamese (default) and English.

Source strings are English; ``builder/translations/vi/LC_MESSAGES/messages.po`` holds the Vietnamese.
The catalogs are compiled with Babel's own reader/writer into the data directory at start-up, so no
binary .mo file lives in the repository and a stale one can never be served. Outside a request (errors rendered
by a CLI or a worker, and the error messages of both web apps) :func:`translations` compiles the same .po in
memory, so every process renders the one catalog.

Error messages are English templates in ``builder.errors.ERRORS`` and in the typed errors' calls; to list the
ones missing from the catalog run ``tests/web/test_errors.py`` (it names them).
"""
from __future__ import annotations

import io
import threading
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

SOURCE_DIR = Path(__file__).parent / "translations"


def compile_catalogs(dest: Path) -> Path:
    """Compile every ``<lang>/LC_MESSAGES/messages.po`` under SOURCE_DIR into ``dest``; returns ``dest``."""
    for po_path in SOURCE_DIR.glob("*/LC_MESSAGES/messages.po"):
        out = dest / po_path.relative_to(SOURCE_DIR).with_suffix(".mo")
        if out.exists() and out.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(_mo_bytes(po_path))
        tmp.replace(out)
    return dest


_MO: dict[Path, tuple[float, bytes]] = {}
_MO_LOCK = threading.Lock()


def _mo_bytes(po_path: Path) -> bytes:
    """The .mo compiled from ``po_path``, kept per process until the .po changes (every app a process creates, and
    every error rendered outside a request, read the one compiled catalog)."""
    stamp = po_path.stat().st_mtime
    with _MO_LOCK:
        cached = _MO.get(po_path)
        if cached is None or cached[0] != stamp:
            with open(po_path, "rb") as fh:
                catalog = read_po(fh, locale=po_path.parts[-3])
            buf = io.BytesIO()
            write_mo(buf, catalog)
            cached = _MO[po_path] = (stamp, buf.getvalue())
        return cached[1]


def untranslated(lang: str = "vi") -> list[str]:
    """Message ids with no translation in ``lang`` (used by a test to keep the catalog complete)."""
    with open(SOURCE_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh, locale=lang)
    return [m.id for m in catalog if m.id and not m.string]


_CACHE: dict[str, tuple[float, NullTranslations]] = {}
_CACHE_LOCK = threading.Lock()


def translations(lang: str) -> NullTranslations:
    """Babel translations for ``lang`` ('vi' from the catalog; 'en', the source language, is the msgids themselves),
    compiled in memory from the .po and kept until the .po changes."""
    if lang == "en":
        return NullTranslations()
    po_path = SOURCE_DIR / lang / "LC_MESSAGES" / "messages.po"
    stamp = po_path.stat().st_mtime
    cached = _CACHE.get(lang)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with _CACHE_LOCK:
        result = Translations(fp=io.BytesIO(_mo_bytes(po_path)))
        _CACHE[lang] = (stamp, result)
    return result
