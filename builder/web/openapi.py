"""The OpenAPI 3.1 document served at /api/v1/openapi.json: the paths other clients rely on, and the source of truth
for their inputs — every request to the authoring API is checked against it before its view runs
(builder/web/validation.py): types, ranges, lengths, enums, required fields."""
from __future__ import annotations

from ..models import ACCESS_LEVELS, TEASER_KINDS
from ..premium import TEASER_SECONDS_MAX, TEASER_SECONDS_MIN
from ..services import MAX_ELEVATION_MM, MAX_ID, MAX_PAGE_MM, MAX_URL_LENGTH

ERROR = {"$ref": "#/components/schemas/Error"}
PLACEMENT = {
    "x_mm": {"type": "number", "minimum": -2 * MAX_PAGE_MM, "maximum": 2 * MAX_PAGE_MM,
             "description": "left of the unrotated box, mm from the page's left edge (its centre must lie on the page)"},
    "y_mm": {"type": "number", "minimum": -2 * MAX_PAGE_MM, "maximum": 2 * MAX_PAGE_MM,
             "description": "top of the unrotated box, mm from the page's top edge"},
    "width_mm": {"type": "number", "minimum": 1, "maximum": MAX_PAGE_MM},
    "height_mm": {"type": "number", "minimum": 1, "maximum": MAX_PAGE_MM},
    "rotation_deg": {"type": "number", "minimum": -360, "maximum": 360,
                     "description": "clockwise on the page, about the box centre"},
    "elevation_mm": {"type": "number", "minimum": 0, "maximum": MAX_ELEVATION_MM,
                     "description": "height above the paper"},
    "scale": {"type": "number", "minimum": 0.01, "maximum": 100},
}
OVERLAY_OPTIONS = {
    "name": {"type": "string", "maxLength": 200},
    "url": {"type": "string", "maxLength": MAX_URL_LENGTH, "description": "http(s) address of a link overlay"},
    "label": {"type": "string", "maxLength": 80},
    "autoplay": {"type": "boolean"}, "loop": {"type": "boolean"}, "muted": {"type": "boolean"},
    "animate": {"type": "boolean"},
    "chroma_key": {"type": ["string", "null"], "pattern": "^(#[0-9a-fA-F]{6}|none|)$",
                   "description": "#rrggbb made transparent in a video, or none"},
}
# Issue 27: who may see the overlay, and what a reader without the right sees instead (docs/PREMIUM.md).
OVERLAY_ACCESS = {
    "access": {"type": "string", "enum": list(ACCESS_LEVELS),
               "description": "free (default) or premium: for subscribers only; a link cannot be premium"},
    "teaser": {"type": ["string", "null"], "enum": [*TEASER_KINDS, None],
               "description": "what readers without a subscription see: poster, clip (the first teaser_seconds) or "
                              "blur (a blurred still); null: the kind's default (video, audio: clip; animated image: "
                              "poster; model, image, 360°: blur)"},
    "teaser_seconds": {"type": "integer", "minimum": TEASER_SECONDS_MIN, "maximum": TEASER_SECONDS_MAX,
                       "description": "length of a clip teaser"},
}
TEXT = {"type": "string", "maxLength": 300}
# Path parameters by name: ids are positive database keys (a 26-digit id overflowed into a 500, issue 25).
PATH_PARAMS = {
    "slug": {"type": "string", "maxLength": 80},
    "sha": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    "fmt": {"type": "string", "enum": ["svg", "pdf", "png"]},
}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def _path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": PATH_PARAMS.get(name, ID)}


def _op(summary: str, ok: str = "200", body: dict | None = None, roles: str = "any role", params=(),
        query: dict | None = None):
    """One operation: ``params`` are its path parameters by name, ``query`` its query parameters' schemas."""
    op = {"summary": summary, "description": f"Roles: {roles}.", "security": [{"bearer": []}],
          "parameters": [_path_param(p) for p in params]
                        + [{"name": name, "in": "query", "schema": schema} for name, schema in (query or {}).items()],
          "responses": {ok: {"description": "OK"}, **{c: {"description": d, "content": {"application/json": {"schema": ERROR}}}
                                                     for c, d in (("400", "bad input"), ("401", "no or bad token"),
                                                                  ("403", "role not allowed"), ("404", "not found"))}}}
    if body:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _form_field(schema: dict) -> dict:
    """A JSON field's schema for a form: a form has no null (an empty field is an absent one), so a "string or
    null" field is a string there."""
    if isinstance(schema.get("type"), list):
        return {**schema, "type": next(t for t in schema["type"] if t != "null")}
    return schema


def _multipart(props: dict, required=()):
    """A form body (multipart or urlencoded). Its text fields are serialized in "form" style (so a validator reads
    "12" as the number 12); its files are binary parts."""
    props = {name: _form_field(schema) for name, schema in props.items()}
    encoding = {name: {"style": "form"} for name, schema in props.items() if schema.get("format") != "binary"}
    media = {"schema": {"type": "object", "properties": props, "required": list(required)}, "encoding": encoding}
    return {"multipart/form-data": media, "application/x-www-form-urlencoded": media}


def _json(props: dict, required=()):
    """A JSON object body; the same fields are also accepted as a form."""
    return {"application/json": {"schema": {"type": "object", "properties": props, "required": list(required)}},
            **_multipart(props, required)}


def _json_or_multipart(props: dict, required=()):
    """A form that may carry files, or the same fields as a JSON object (without files)."""
    files = {name for name, schema in props.items() if schema.get("format") == "binary"}
    json_props = {name: schema for name, schema in props.items() if name not in files}
    return {**_json(json_props, [r for r in required if r not in files]), **_multipart(props, required)}


WRITERS = "admin, editor, designer"
PUBLISHERS = "admin, editor"
SHEETS = "admin, editor, print_desk"


def openapi_document() -> dict:
    from markers.qr import MAX_SIZE_MM, MIN_SIZE_MM
    from markers.sheets import PAPER_SIZES_MM, TEST_SHEET_PAPERS

    from ..models import OVERLAY_KINDS
    from ..services import MAX_TOKEN_DAYS, STOCK_NAMES
    from .sheets import SHEET_MAX_QR_MM

    file_ = {"type": "string", "format": "binary"}
    date = {"type": "string", "format": "date", "maxLength": 10}
    edition_number = {"type": "integer", "minimum": 1, "maximum": 100000}
    page_number = {"type": "integer", "minimum": 1, "maximum": 1000}
    page_mm = {"type": "number", "minimum": 20, "maximum": MAX_PAGE_MM}
    preset = {"type": "string", "maxLength": 20, "description": "A4, A3, Berliner or tabloid (any case)"}
    ecc = {"type": "string", "enum": ["L", "M", "Q", "H", "l", "m", "q", "h"]}
    lang = {"type": "string", "enum": ["vi", "en"]}
    qr_query = {"size_mm": {"type": "number", "minimum": MIN_SIZE_MM, "maximum": MAX_SIZE_MM}, "ecc": ecc,
                "badge": {"type": "string", "enum": ["0", "1"]}}
    paths = {
        "/api/v1/publications": {
            "get": _op("List publications"),
            "post": _op("Create a publication", "201",
                        _json({"name": {"type": "string", "maxLength": 200},
                               "slug": {"type": "string", "maxLength": 80, "pattern": "^[a-zA-Z0-9-]+$"}},
                              ("name", "slug")), WRITERS)},
        "/api/v1/publications/{slug}": {
            "get": _op("A publication with its editions", params=("slug",)),
            "patch": _op("Rename a publication, or set when its premium overlays become free",
                         body=_json({"name": {"type": "string", "maxLength": 200},
                                     "premium_free_after_days": {
                                         "type": ["integer", "null"], "minimum": 1, "maximum": 3650,
                                         "description": "an edition's premium overlays become free for everyone "
                                                        "this many days after its date (null: never); editors "
                                                        "and admins"}}),
                         roles=WRITERS, params=("slug",)),
            "delete": _op("Delete a publication (none of its editions published)", "204", roles=PUBLISHERS, params=("slug",))},
        "/api/v1/publications/{slug}/editions": {
            "get": _op("List editions", params=("slug",)),
            "post": _op("Create an edition", "201", _json({"date": date, "number": edition_number, "title": TEXT},
                                                          ("date", "number")), WRITERS, ("slug",))},
        "/api/v1/editions/{edition_id}": {
            "get": _op("An edition with its pages", params=("edition_id",)),
            "patch": _op("Change date, number or title", body=_json({"date": date, "number": edition_number, "title": TEXT}),
                         roles=WRITERS, params=("edition_id",)),
            "delete": _op("Delete an unpublished edition", "204", roles=WRITERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/submit": {"post": _op("Send for review", roles=WRITERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/send-back": {
            "post": _op("Send back to the designers with a comment",
                        body=_json({"comment": {"type": "string", "maxLength": 4000}}, ("comment",)),
                        roles=PUBLISHERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/publish": {
            "post": _op("Publish: queue a job that freezes an immutable version and builds bundles and markers; "
                        "202 with the job (Location: the job to poll), 409 while another job of the edition is "
                        "queued or running", "202", roles=PUBLISHERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/unpublish": {
            "post": _op("Withdraw the published version: queue a job; 202 with the job", "202", roles=PUBLISHERS,
                        params=("edition_id",))},
        "/api/v1/jobs/{job_id}": {
            "get": _op("A publish / unpublish job: {id, kind, edition_id, status: queued|running|done|failed, "
                       "pages_done, pages_total, error: {error, message}|null, version}", params=("job_id",))},
        "/api/v1/editions/{edition_id}/pages": {
            "get": _op("List pages", params=("edition_id",)),
            "post": _op("Add a print page (JPEG, PNG or PDF)", "201",
                        _multipart({"image": file_, "file": file_, "number": page_number, "width_mm": page_mm,
                                    "height_mm": page_mm, "preset": preset,
                                    "pdf_page": {"type": "integer", "minimum": 1, "maximum": 10000}, "title": TEXT}),
                        WRITERS, ("edition_id",))},
        "/api/v1/pages/{page_id}": {
            "get": _op("A page with its overlays and marker rating", params=("page_id",)),
            "patch": _op("Change number, title or size", body=_json({"number": page_number, "title": TEXT,
                                                                      "width_mm": page_mm, "height_mm": page_mm,
                                                                      "preset": preset}),
                         roles=WRITERS, params=("page_id",)),
            "delete": _op("Delete a page", "204", roles=WRITERS, params=("page_id",))},
        "/api/v1/pages/{page_id}/bundle-check": {
            "post": _op("Package the draft page as publishing would; sizes vs budgets, biggest contributors, warnings",
                        roles=WRITERS, params=("page_id",),
                        query={"compress": {"type": "string", "enum": ["0", "1"],
                                            "description": "1 (default): compress as publishing does"}})},
        "/api/v1/pages/{page_id}/marker-sheet.pdf": {
            "get": _op("Marker test sheet: the page at its real size with crop marks, its rating and QR",
                       roles=SHEETS + ", designer", params=("page_id",),
                       query={"paper": {"type": "string", "enum": list(TEST_SHEET_PAPERS)}, "lang": lang})},
        "/api/v1/pages/{page_id}/overlays": {
            "get": _op("List overlays", params=("page_id",)),
            "post": _op("Add an overlay", "201",
                        _json_or_multipart({"kind": {"type": "string", "enum": list(OVERLAY_KINDS)},
                                            "file": file_, "stock": {"type": "string", "enum": list(STOCK_NAMES)},
                                            **PLACEMENT, **OVERLAY_OPTIONS, **OVERLAY_ACCESS},
                                           ("kind", "x_mm", "y_mm", "width_mm", "height_mm")), WRITERS, ("page_id",))},
        "/api/v1/overlays/{overlay_id}": {
            "get": _op("An overlay", params=("overlay_id",)),
            "patch": _op("Move, resize, rotate or change options, access and teaser",
                         body=_json({**PLACEMENT, **OVERLAY_OPTIONS, **OVERLAY_ACCESS}),
                         roles=WRITERS, params=("overlay_id",)),
            "delete": _op("Delete an overlay", "204", roles=WRITERS, params=("overlay_id",))},
        "/api/v1/editions/{edition_id}/sheet.pdf": {
            "get": _op("Edition QR/marker sheet (vector PDF)", roles=SHEETS, params=("edition_id",),
                       query={"paper": {"type": "string", "enum": list(PAPER_SIZES_MM)}, "lang": lang,
                              "size_mm": {"type": "number", "minimum": MIN_SIZE_MM, "maximum": SHEET_MAX_QR_MM},
                              "ecc": ecc})},
        "/api/v1/pages/{page_id}/qr.{fmt}": {
            "get": _op("QR code of a page's deep link as svg, pdf or png", roles=SHEETS, params=("page_id", "fmt"),
                       query=qr_query),
            "post": _op("The same with a logo in the middle (ecc Q or H; a PNG of at most 2 MB and 2048² px)",
                        body=_multipart({**qr_query, "logo": file_}), roles=SHEETS, params=("page_id", "fmt"))},
        "/api/v1/assets/{sha}": {
            "get": _op("A draft asset (page image, upload, poster) by its SHA-256, for the editor's preview",
                       params=("sha",), query={"type": {"type": "string", "maxLength": 100}})},
        "/api/v1/tokens": {"post": _op("Create an API token for yourself (shown once)", "201",
                                       _json({"name": {"type": "string", "maxLength": 200},
                                              "expires_days": {"type": ["integer", "null"], "minimum": 0,
                                                               "maximum": MAX_TOKEN_DAYS,
                                                               "description": "0 or none: never expires"}}))},
        "/api/v1/tokens/{token_id}": {"delete": _op("Revoke a token", "204", params=("token_id",))},
        "/api/v1/audit": {"get": _op("The audit log (newest first)", roles="admin",
                                     query={"limit": {"type": "integer", "minimum": 1, "maximum": 1000}})},
        "/api/v1/recognize": {
            "post": {"summary": "Recognize a published page in a photo (public)", "security": [],
                     "parameters": [
                         {"name": "scope", "in": "query", "schema": {"type": "string"},
                          "description": "e.g. edition:12 — searched first, then the whole archive"},
                         {"name": "tilted", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]},
                          "description": "1: also the tilted look (the photo un-tilted in four directions, for a page "
                                         "held at 40-60 deg); slower when nothing is found"}],
                     "requestBody": {"content": {"image/jpeg": {"schema": file_}, "image/png": {"schema": file_},
                                                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                                                     "image": file_, "scope": {"type": "string"},
                                                     "tilted": {"type": "string", "enum": ["0", "1"]}}}}}},
                     "responses": {"200": {"description": "{match: {...} | null}"},
                                   "400": {"description": "not an image, or tilted not 0 / 1"},
                                   "413": {"description": "too large"}, "429": {"description": "rate exceeded"}}}},
    }
    paths.update(__import__("builder.web.analytics", fromlist=["openapi_paths"]).openapi_paths())  # issue 26
    paths.update(__import__("builder.web.readers_admin", fromlist=["openapi_paths"]).openapi_paths())  # issue 27
    return {
        "openapi": "3.1.0",
        "info": {"title": "Báo Nhúng API", "version": "1.0.0",
                 "description": "Authoring API. Errors: {error, message}; message in the Accept-Language (vi default, en)."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                                  "required": ["error", "message"]}},
        },
    }
