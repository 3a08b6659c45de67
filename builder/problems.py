"""Old import path of the authoring service's errors, kept while callers move to :mod:`builder.errors` (the one
error system: registry, typed errors, messages in the Babel catalog)."""
from __future__ import annotations

from .errors import (AppError, BadRequest, Conflict, Forbidden, InvalidField, LoginThrottled, MissingField,  # noqa: F401
                     NotFound, PublishFailed, ServerFault, ServiceError, Unauthorized, error_payload)
