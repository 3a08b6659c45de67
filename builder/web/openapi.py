"""The OpenAPI 3.1 document served at /api/v1/openapi.json (paths other clients rely on)."""
from __future__ import annotations

ERROR = {"$ref": "#/components/schemas/Error"}
PLACEMENT = {
    "x_mm": {"type": "number", "description": "left of the unrotated box, mm from the page's left edge"},
    "y_mm": {"type": "number", "description": "top of the unrotated box, mm from the page's top edge"},
    "width_mm": {"type": "number"}, "height_mm": {"type": "number"},
    "rotation_deg": {"type": "number", "description": "clockwise on the page, about the box centre"},
    "elevation_mm": {"type": "number", "description": "height above the paper"},
    "scale": {"type": "number"},
}


def _op(summary: str, ok: str = "200", body: dict | None = None, roles: str = "any role", params=()):
    op = {"summary": summary, "description": f"Roles: {roles}.", "security": [{"bearer": []}],
          "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params],
          "responses": {ok: {"description": "OK"}, **{c: {"description": d, "content": {"application/json": {"schema": ERROR}}}
                                                     for c, d in (("400", "bad input"), ("401", "no or bad token"),
                                                                  ("403", "role not allowed"), ("404", "not found"))}}}
    if body:
        op["requestBody"] = {"required": True, "content": body}
    return op


def _json(props: dict, required=()):
    return {"application/json": {"schema": {"type": "object", "properties": props, "required": list(required)}}}


def _multipart(props: dict, required=()):
    return {"multipart/form-data": {"schema": {"type": "object", "properties": props, "required": list(required)}}}


WRITERS = "admin, editor, designer"
PUBLISHERS = "admin, editor"
SHEETS = "admin, editor, print_desk"


def openapi_document() -> dict:
    file_ = {"type": "string", "format": "binary"}
    paths = {
        "/api/v1/publications": {
            "get": _op("List publications"),
            "post": _op("Create a publication", "201", _json({"name": {"type": "string"}, "slug": {"type": "string"}},
                                                              ("name", "slug")), WRITERS)},
        "/api/v1/publications/{slug}": {
            "get": _op("A publication with its editions", params=("slug",)),
            "patch": _op("Rename a publication", body=_json({"name": {"type": "string"}}), roles=WRITERS, params=("slug",)),
            "delete": _op("Delete a publication (none of its editions published)", "204", roles=PUBLISHERS, params=("slug",))},
        "/api/v1/publications/{slug}/editions": {
            "get": _op("List editions", params=("slug",)),
            "post": _op("Create an edition", "201", _json({"date": {"type": "string", "format": "date"},
                                                           "number": {"type": "integer"}, "title": {"type": "string"}},
                                                          ("date", "number")), WRITERS, ("slug",))},
        "/api/v1/editions/{edition_id}": {
            "get": _op("An edition with its pages", params=("edition_id",)),
            "patch": _op("Change date, number or title", body=_json({"date": {"type": "string"}, "number": {"type": "integer"},
                                                                      "title": {"type": "string"}}),
                         roles=WRITERS, params=("edition_id",)),
            "delete": _op("Delete an unpublished edition", "204", roles=WRITERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/submit": {"post": _op("Send for review", roles=WRITERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/send-back": {
            "post": _op("Send back to the designers with a comment", body=_json({"comment": {"type": "string"}}, ("comment",)),
                        roles=PUBLISHERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/publish": {
            "post": _op("Publish: freeze an immutable version, build bundles and markers", roles=PUBLISHERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/unpublish": {
            "post": _op("Withdraw the published version", roles=PUBLISHERS, params=("edition_id",))},
        "/api/v1/editions/{edition_id}/pages": {
            "get": _op("List pages", params=("edition_id",)),
            "post": _op("Add a print page (JPEG, PNG or PDF)", "201",
                        _multipart({"image": file_, "number": {"type": "integer"}, "width_mm": {"type": "number"},
                                    "height_mm": {"type": "number"}, "preset": {"type": "string", "enum": ["A4", "A3", "Berliner", "tabloid"]},
                                    "pdf_page": {"type": "integer"}, "title": {"type": "string"}}, ("image",)),
                        WRITERS, ("edition_id",))},
        "/api/v1/pages/{page_id}": {
            "get": _op("A page with its overlays and marker rating", params=("page_id",)),
            "patch": _op("Change number, title or size", body=_json({"number": {"type": "integer"}, "title": {"type": "string"},
                                                                      "width_mm": {"type": "number"}, "height_mm": {"type": "number"}}),
                         roles=WRITERS, params=("page_id",)),
            "delete": _op("Delete a page", "204", roles=WRITERS, params=("page_id",))},
        "/api/v1/pages/{page_id}/bundle-check": {
            "post": _op("Package the draft page as publishing would; sizes vs budgets, biggest contributors, warnings",
                        roles=WRITERS, params=("page_id",))},
        "/api/v1/pages/{page_id}/marker-sheet.pdf": {
            "get": _op("Marker test sheet: the page with crop marks, its rating and QR; ?paper=A4|A3",
                       roles=SHEETS + ", designer", params=("page_id",))},
        "/api/v1/pages/{page_id}/overlays": {
            "get": _op("List overlays", params=("page_id",)),
            "post": _op("Add an overlay", "201",
                        _multipart({"kind": {"type": "string", "enum": ["model3d", "video", "audio", "animated_image",
                                                                         "image", "panorama360", "link"]},
                                    "file": file_, "stock": {"type": "string", "enum": ["arrow", "pin", "info"]},
                                    "url": {"type": "string"}, **PLACEMENT,
                                    "autoplay": {"type": "boolean"}, "loop": {"type": "boolean"}, "muted": {"type": "boolean"},
                                    "chroma_key": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}},
                                   ("kind", "x_mm", "y_mm", "width_mm", "height_mm")), WRITERS, ("page_id",))},
        "/api/v1/overlays/{overlay_id}": {
            "get": _op("An overlay", params=("overlay_id",)),
            "patch": _op("Move, resize, rotate or change options", body=_json(PLACEMENT), roles=WRITERS, params=("overlay_id",)),
            "delete": _op("Delete an overlay", "204", roles=WRITERS, params=("overlay_id",))},
        "/api/v1/editions/{edition_id}/sheet.pdf": {
            "get": _op("Edition QR/marker sheet (vector PDF); ?paper=A4|A3", roles=SHEETS, params=("edition_id",))},
        "/api/v1/pages/{page_id}/qr.{fmt}": {
            "get": _op("QR code of a page's deep link as svg, pdf or png; ?size_mm=20 (15-200) &ecc=M&badge=1",
                       roles=SHEETS, params=("page_id", "fmt")),
            "post": _op("The same with a logo in the middle (ecc Q or H; a PNG of at most 2 MB and 2048² px)",
                        body={"multipart/form-data": {"schema": {"type": "object", "properties": {
                            "size_mm": {"type": "number", "minimum": 15, "maximum": 200},
                            "ecc": {"type": "string", "enum": ["L", "M", "Q", "H"]},
                            "badge": {"type": "string"}, "logo": {"type": "string", "format": "binary"}}}}},
                        roles=SHEETS, params=("page_id", "fmt"))},
        "/api/v1/assets/{sha}": {
            "get": _op("A draft asset (page image, upload, poster) by its SHA-256, for the editor's preview",
                       params=("sha",))},
        "/api/v1/tokens": {"post": _op("Create an API token for yourself (shown once)", "201",
                                       _json({"name": {"type": "string"}, "expires_days": {"type": "integer"}}))},
        "/api/v1/tokens/{token_id}": {"delete": _op("Revoke a token", "204", params=("token_id",))},
        "/api/v1/audit": {"get": _op("The audit log (newest first)", roles="admin")},
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
