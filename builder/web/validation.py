"""Every API request checked against the OpenAPI document before its view runs (issue 25: one schema mechanism).

The document (`openapi.py`) is the source of truth for each operation's path and query parameters and its body:
types, ranges, lengths, enums, required fields. openapi-core checks the request against it; a refusal becomes the
product's usual 400 (``missing_field`` / ``invalid_field``, the field named as a designer calls it, vi/en). The
services keep their own checks of what a schema cannot say (a URL's scheme, an overlay's centre on its page).

Two adaptations, both in this module:
- Security is not checked here: ``login_required`` does it (bearer token, or the editor's session cookie + CSRF,
  which the document does not describe).
- A form body is not re-parsed: openapi-core would read the raw multipart body into memory and parse it again with
  the email module (a 100 MB video, twice). Its deserializer for form bodies hands it the fields Flask already
  parsed, an empty form field being an absent one (as the services treat it), a file field a placeholder.
"""
from __future__ import annotations

from functools import lru_cache

from flask import g, request
from openapi_core import Config, OpenAPI
from openapi_core.contrib.flask import FlaskOpenAPIRequest
from openapi_core.casting.schemas.exceptions import CastError
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import (InvalidParameter, MissingRequiredParameter,
                                                        MissingRequiredRequestBody, RequestBodyValidationError)
from openapi_core.validation.request.validators import V31RequestValidator
from werkzeug.datastructures import ImmutableMultiDict

from ..errors import N_, AppError, BadRequest, InvalidField, MissingField, NotFound, msg, verbatim
from .openapi import openapi_document

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
CHECKED_BLUEPRINTS = ("api", "sheets")  # the authoring API; the public side checks its few parameters itself


class _ParametersAndBody(V31RequestValidator):
    """openapi-core's request validator without its security step (``login_required`` owns authentication)."""

    def _iter_errors(self, request, operation, path):
        yield from self._iter_parameters_errors(request, operation, path)
        try:
            self._get_body(request.body, request.content_type, operation)
        except RequestBodyValidationError as exc:
            if not isinstance(exc, MissingRequiredRequestBody) or request.content_type.startswith(FORM_TYPES):
                yield exc


class _FlaskRequest(FlaskOpenAPIRequest):
    @property
    def body(self) -> bytes:
        if self.request.mimetype in FORM_TYPES:
            return b"form"  # never read: _parsed_form answers from request.form / request.files
        return self.request.get_data(cache=True)


def _parsed_form(_raw: bytes, **_parameters) -> ImmutableMultiDict:
    fields = [(k, v) for k, v in request.form.items(multi=True) if v != ""]
    files = [(k, "(file)") for k in request.files]  # its content is checked by the upload checks, by kind
    return ImmutableMultiDict(fields + files)


@lru_cache(maxsize=1)
def _document() -> dict:
    return openapi_document()


@lru_cache(maxsize=1)
def _openapi() -> OpenAPI:
    config = Config(request_validator_cls=_ParametersAndBody,
                    extra_media_type_deserializers={t: _parsed_form for t in FORM_TYPES})
    return OpenAPI.from_dict(_document(), config=config)


def _field_of(error) -> str:
    """The field a schema error is about: its path in the body, else the property a `required` names."""
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        return missing[0] if missing else "body"
    path = [p for p in error.absolute_path if isinstance(p, str)]
    return path[0] if path else "body"


def _field_schema(field: str) -> dict:
    """The document's schema of a parameter or body field of the current request's operation ({} if none)."""
    path = _FlaskRequest(request).path_pattern
    operation = _document()["paths"].get(path, {}).get(request.method.lower(), {})
    for parameter in operation.get("parameters", ()):
        if parameter["name"] == field:
            return parameter["schema"]
    for media in operation.get("requestBody", {}).get("content", {}).values():
        if field in media["schema"].get("properties", {}):
            return media["schema"]["properties"][field]
    return {}


def _number(value) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"


def _reason(kind: str, bound, schema: dict, field: str = "") -> str | dict:
    """What the value must be (an English template or a :func:`msg` of parts, Vietnamese in the catalog): a number's
    type and range said together (a value out of range learns both ends), else from the schema keyword it broke."""
    number_type = schema.get("type")
    if isinstance(number_type, list):  # "integer or null": a null is never out of range
        number_type = next((t for t in number_type if t != "null"), None)
    if kind in ("type", "minimum", "maximum") and number_type in ("number", "integer"):
        what = msg("a whole number") if number_type == "integer" else msg("a number")
        if field.endswith("_mm"):  # the field's unit is in its name: x_mm, size_mm, elevation_mm
            what = msg("{number} of millimetres", number=what)
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and hi is not None:
            return msg("must be {what} from {lo} to {hi}", what=what, lo=_number(lo), hi=_number(hi))
        if lo is not None:
            return msg("must be {what} of at least {lo}", what=what, lo=_number(lo))
        if hi is not None:
            return msg("must be {what} of at most {hi}", what=what, hi=_number(hi))
    if kind == "type":
        names = {"integer": N_("a whole number"), "number": N_("a number"), "string": N_("text"),
                 "boolean": N_("true or false"), "object": N_("a JSON object"), "array": N_("a list")}
        types = bound if isinstance(bound, list) else [bound]
        what = msg(names[types[0]]) if types[0] in names else msg(verbatim(types[0]))
        for other in types[1:]:
            what = msg("{first} or {second}", first=what,
                       second=msg(names[other]) if other in names else msg(verbatim(other)))
        return msg("must be {what}", what=what)
    if kind == "enum":
        listed = ", ".join("null" if v is None else str(v) for v in bound)  # JSON's name for None
        return msg("must be one of: {listed}", listed=listed)
    if kind == "maxLength":
        return msg("at most {limit} characters", limit=bound)
    if kind == "minLength":
        return msg("at least {limit} characters", limit=bound)
    if kind == "pattern":
        return "is not in the expected form"
    if kind == "format":
        return msg("must be a valid {format}", format=bound)
    return "is not valid"


def _service_error(exc: Exception) -> AppError:
    if isinstance(exc, InvalidParameter) and exc.location == "path":
        # /overlays/abc or a 26-digit id names no overlay: a 404, as for an id that is not in the database
        return NotFound(exc.name.removesuffix("_id"), request.view_args.get(exc.name, "")[:40])
    if isinstance(exc, MissingRequiredParameter):
        return MissingField(exc.name)
    if isinstance(exc, MissingRequiredRequestBody):
        return BadRequest("the request has no body")
    cause = exc.__cause__
    if isinstance(cause, CastError):  # a form or query value that cannot be read as its type ("abc" as a number)
        sources = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
        field = getattr(exc, "name", None) or next((k for k, v in sources if v == cause.value), "body")
        return InvalidField(field, _reason("type", cause.type, _field_schema(field), field))
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        # the outermost error; of a field's, its enum before its type (null for access: "one of: free, premium"
        # says more than "must be text")
        error = min(schema_errors, key=lambda e: (len(e.absolute_path), e.validator != "enum"))
        field = exc.name if isinstance(exc, InvalidParameter) else _field_of(error)
        if field == "body" and error.validator == "type":
            return BadRequest("the body must be a JSON object")
        if error.validator == "required" and not isinstance(exc, InvalidParameter):
            return MissingField(field)
        return InvalidField(field, _reason(error.validator, error.validator_value, error.schema, field))
    if isinstance(exc, InvalidParameter) or hasattr(exc, "name"):
        return InvalidField(exc.name, "is not valid")
    if request.mimetype == "application/json":
        return BadRequest("the body must be a JSON object")
    return BadRequest(verbatim(str(exc)[:200]))


def check_request_against_openapi() -> None:
    """``before_request`` of the app: for the API blueprints, raise the first refusal as an AppError (a 400)."""
    if request.blueprint not in CHECKED_BLUEPRINTS:
        return
    if request.url_rule is None or request.method in ("HEAD", "OPTIONS") or g.get("user") is None:
        return  # not authenticated: login_required answers 401 before anything about the body is said
    try:
        errors = list(_openapi().request_validator.iter_errors(_FlaskRequest(request)))
    except PathError:
        return  # an operation the document does not describe (it is checked complete by tests/web/test_api.py)
    for exc in errors:
        if isinstance(exc, PathError):
            return
        raise _service_error(exc)
