"""Interface languages: Vietnamese (default) and English.

Source strings are English; ``builder/translations/vi/LC_MESSAGES/messages.po`` holds the Vietnamese.
The catalogs are compiled with Babel's own reader/writer into the data directory at start-up, so no
binary .mo file lives in the repository and a stale one can never be served.
"""
from __future__ import annotations

from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SOURCE_DIR = Path(__file__).parent / "translations"


def compile_catalogs(dest: Path) -> Path:
    """Compile every ``<lang>/LC_MESSAGES/messages.po`` under SOURCE_DIR into ``dest``; returns ``dest``."""
    for po_path in SOURCE_DIR.glob("*/LC_MESSAGES/messages.po"):
        out = dest / po_path.relative_to(SOURCE_DIR).with_suffix(".mo")
        if out.exists() and out.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(po_path, "rb") as fh:
            catalog = read_po(fh, locale=po_path.parts[-3])
        tmp = out.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            write_mo(fh, catalog)
        tmp.replace(out)
    return dest


def untranslated(lang: str = "vi") -> list[str]:
    """Message ids with no translation in ``lang`` (used by a test to keep the catalog complete)."""
    with open(SOURCE_DIR / lang / "LC_MESSAGES" / "messages.po", "rb") as fh:
        catalog = read_po(fh, locale=lang)
    return [m.id for m in catalog if m.id and not m.string]
