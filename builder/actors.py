"""Who is acting (``Actor``), the role check and the audit log entry — shared by the authoring services and the
reader side (builder.entitlements: a reader redeeming a code is audited as ``reader:<id>``), without either importing
the other's code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy.orm import Session

from .models import AuditEntry, User
from .errors import Forbidden


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where (for the audit log)."""

    user_id: int | None
    email: str
    role: str
    address: str = ""

    @classmethod
    def of(cls, user: User, address: str = "") -> "Actor":
        return cls(user.id, user.email, user.role, address)


SYSTEM = Actor(None, "system", "admin", "cli")


def require_role(actor: Actor, allowed: Iterable[str]) -> None:
    if actor.role not in allowed:
        raise Forbidden(actor.role)


def audit(db: Session, actor: Actor, action: str, target_type: str = "", target_id: Any = "",
          **detail) -> None:
    db.add(AuditEntry(user_id=actor.user_id, user_email=actor.email, action=action, target_type=target_type,
                      target_id=str(target_id), address=actor.address, detail=detail))
