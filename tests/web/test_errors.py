"""The one error system (issue 29): every registered error has a status (web layer) and both languages (Babel
catalog); every message part written in the code is in the catalog; the same error renders in Vietnamese by default
and in English on request, inside a request and outside one; domain modules never import Flask."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from builder.errors import (ERRORS, FIELD_LABELS, KIND_NAMES, STATUS_NAMES, UPLOAD_WORDS, WHAT_NAMES, AppError,
                            Conflict, InvalidField, NotFound, msg, template_fields)
from builder.http_errors import STATUS, Refusal, missing_statuses, status_for
from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "builder/translations/vi/LC_MESSAGES/messages.po"
# Calls whose argument at this position is a message template (English, a msgid): see builder/errors.py
TEMPLATE_ARGS = {"InvalidField": 1, "AnalyticsError": 1, "Conflict": 0, "BadRequest": 0, "msg": 0, "N_": 0}
# Values rendered per language before a template is filled (builder.errors.render)
DERIVED = {"what", "What", "field_label", "status_name", "kind_name"}


def _catalog() -> dict[tuple[str | None, str], str]:
    with open(PO, "rb") as fh:
        return {(m.context, m.id): m.string for m in read_po(fh, locale="vi") if m.id and not m.fuzzy}


def _python_files(*parts: str) -> list[Path]:
    return [p for part in parts for p in sorted((ROOT / part).rglob("*.py")) if "__pycache__" not in p.parts]


def _template_args() -> list[tuple[str, int, ast.expr]]:
    """(file, line, node) of every message-template argument written in builder/ and viewer_api/."""
    found = []
    for path in _python_files("builder", "viewer_api"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in TEMPLATE_ARGS and len(node.args) > TEMPLATE_ARGS[name]:
                found.append((str(path.relative_to(ROOT)), node.lineno, node.args[TEMPLATE_ARGS[name]]))
    return found


def test_every_registered_error_has_a_status_and_a_vietnamese_and_english_message():
    catalog = _catalog()
    assert len(ERRORS) >= 70
    assert missing_statuses() == [] and sorted(set(STATUS) - set(ERRORS)) == []
    for name, entry in ERRORS.items():
        assert 400 <= STATUS[name] <= 599, name
        assert entry.template.strip(), name  # English: the msgid itself
        vi = catalog.get((None, entry.template), "")
        assert vi.strip() and vi != entry.template or name in ("conflict",), f"{name}: no Vietnamese in messages.po"
        # the translation uses only values the English has (or their per-language forms)
        assert template_fields(vi) <= template_fields(entry.template) | DERIVED, name


def test_every_word_a_message_puts_in_a_value_is_translated():
    catalog = _catalog()
    expected = ([("what", w) for w in WHAT_NAMES] + [("field", label) for label in FIELD_LABELS.values()]
                + [("edition status", s) for s in STATUS_NAMES] + [("overlay kind", k) for k in KIND_NAMES.values()]
                + [("upload", w) for w in UPLOAD_WORDS.values()])
    assert [key for key in expected if not catalog.get(key, "").strip()] == []


def test_every_message_part_written_in_the_code_is_in_the_catalog():
    """InvalidField("x", "must be ..."), Conflict("..."), msg("..."): each literal is a msgid with a Vietnamese
    translation, and never an f-string or a concatenation (the values go in as named values)."""
    catalog = _catalog()
    args = _template_args()
    literals = [(f, line, a.value) for f, line, a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    assert len(literals) > 80
    composed = [(f, line) for f, line, a in args if isinstance(a, (ast.JoinedStr, ast.BinOp))]
    assert composed == []
    missing = [(f, line, text) for f, line, text in literals if not catalog.get((None, text), "").strip()]
    assert missing == []
    for _f, _line, text in literals:
        assert template_fields(catalog[(None, text)]) <= template_fields(text), text


def test_a_message_renders_in_vietnamese_by_default_and_in_english_on_request_outside_a_request():
    err = InvalidField("x_mm", msg("must be {what} from {lo} to {hi}", what=msg("{number} of millimetres",
                                                                              number=msg("a number")), lo=0, hi=5))
    assert err.message() == "Giá trị không hợp lệ cho vị trí ngang (x_mm): phải là một số milimét từ 0 đến 5"
    assert err.message("en") == "Invalid value for the x position (x_mm): must be a number of millimetres from 0 to 5"
    assert err.message("en-GB") == err.message("en") and err.message("fr") == err.message("vi")
    conflict = Conflict("the slug {slug} is taken", slug="bao-{x}")  # a value's braces are text, never a template
    assert conflict.to_dict("vi") == {"error": "conflict", "message": "đường dẫn bao-{x} đã được dùng"}
    assert NotFound("code_batch").message("en") == "Code_batch not found."
    assert NotFound("edition").message() == "Không tìm thấy số báo."


def test_an_error_is_answered_with_the_status_of_the_web_layer_map():
    assert status_for(NotFound("page")) == 404
    assert status_for(AppError("entitlements_api_off")) == 404
    assert status_for(Refusal(AppError("csrf"), 403)) == 403 and status_for(AppError("csrf")) == 400
    with pytest.raises(ValueError):
        AppError("no_such_error")


def test_the_same_api_error_is_vietnamese_by_default_and_english_with_accept_language(client, users):
    token = users.tokens["editor"]
    vi = client.get("/api/v1/editions/987654", headers=auth(token))
    en = client.get("/api/v1/editions/987654", headers=auth(token, "en"))
    assert vi.status_code == en.status_code == 404
    assert vi.get_json() == {"error": "not_found", "message": "Không tìm thấy số báo."}
    assert en.get_json() == {"error": "not_found", "message": "Edition not found."}


def test_the_ui_renders_the_error_page_in_the_chosen_language(client, users):
    vi = client.get("/no-such-page", headers={"Accept": "text/html"})
    en = client.get("/no-such-page?lang=en", headers={"Accept": "text/html"})
    assert vi.status_code == en.status_code == 404
    assert "Không tìm thấy trang." in vi.get_data(as_text=True)
    assert "Page not found." in en.get_data(as_text=True)


# ------------------------------------------------------------------------------------------ layering

WEB_MODULES = ("builder/web/", "builder/app.py")
FLASK_NAMES = ("flask", "flask_babel", "flask_wtf", "werkzeug")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_modules_do_not_import_flask():
    domain = [p for p in _python_files("builder", "markers")
              if not str(p.relative_to(ROOT)).startswith(WEB_MODULES)]
    assert len(domain) > 40
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n.split(".")[0] in FLASK_NAMES)
                 for p in domain}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_domain_modules_choose_no_http_status():
    """A status is the web layer's (builder/http_errors.py): no ``http_status = 409`` on an error class, no
    ``http_status=`` or status number given to an error, no import of the status map in domain code (bar the
    documented read-only ``AppError.http_status`` kept for tests/builder/test_importers.py)."""
    domain = [p for p in _python_files("builder", "markers")
              if not str(p.relative_to(ROOT)).startswith(WEB_MODULES + ("builder/http_errors.py",))]
    found = []
    for path in domain:
        rel = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "http_status" for t in targets):
                    found.append((rel, node.lineno, "http_status ="))
            elif isinstance(node, ast.Call):
                if any(k.arg == "http_status" for k in node.keywords):
                    found.append((rel, node.lineno, "http_status="))
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name.endswith("Error") and any(isinstance(a, ast.Constant) and isinstance(a.value, int)
                                                  and 400 <= a.value <= 599 for a in node.args):
                    found.append((rel, node.lineno, "a status number given to an error"))
            elif (isinstance(node, ast.ImportFrom) and (node.module or "").endswith("http_errors")
                  and rel != "builder/errors.py"):
                found.append((rel, node.lineno, "imports the status map"))
    assert found == []
