"""Publication members (issue 26): the designers a publication belongs to. A designer reads the readership numbers
of their member publications only; admins and editors add and remove members (each change in the audit log) and
read every publication. No Flask here.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import PublicationMember, Publication, User
from .errors import Conflict, InvalidField, NotFound
from .services import Actor, audit, require_role

MEMBER_MANAGERS = ("admin", "editor")  # who adds and removes members
MEMBER_ROLES = ("designer",)  # who can be one: admins and editors read everything anyway, the print desk nothing
READ_ALL = ("admin", "editor")  # readership of every publication


def members(db: Session, pub: Publication) -> list[User]:
    """The publication's member users, by email."""
    return list(db.scalars(select(User).join(PublicationMember, PublicationMember.user_id == User.id)
                           .where(PublicationMember.publication_id == pub.id).order_by(User.email)))


def candidates(db: Session, pub: Publication) -> list[User]:
    """Active designers who are not members of ``pub`` yet (the add form's choices), by email."""
    taken = select(PublicationMember.user_id).where(PublicationMember.publication_id == pub.id)
    return list(db.scalars(select(User).where(User.role.in_(MEMBER_ROLES), User.active.is_(True),
                                              User.id.not_in(taken)).order_by(User.email)))


def _member_user(db: Session, user_id) -> User:
    try:
        ident = int(user_id)
    except (TypeError, ValueError):
        raise InvalidField("user_id", "a user id (a whole number)") from None
    user = db.get(User, ident) if 1 <= ident <= 2**31 - 1 else None
    if user is None:
        raise NotFound("user", user_id)
    return user


def add_member(db: Session, actor: Actor, pub: Publication, user_id) -> PublicationMember:
    """Make the designer ``user_id`` a member of ``pub`` (audited ``publication.member_add``). Only designers who are
    active; an existing member is a 409."""
    require_role(actor, MEMBER_MANAGERS)
    user = _member_user(db, user_id)
    if user.role not in MEMBER_ROLES or not user.active:
        raise InvalidField("user_id", "only an active designer can be a member of a publication")
    if db.scalar(select(PublicationMember).where(PublicationMember.publication_id == pub.id,
                                                 PublicationMember.user_id == user.id)) is not None:
        raise Conflict("{email} is already a member of this publication", email=user.email)
    member = PublicationMember(publication_id=pub.id, user_id=user.id)
    db.add(member)
    audit(db, actor, "publication.member_add", "publication", pub.id, user_id=user.id, email=user.email)
    db.commit()
    return member


def remove_member(db: Session, actor: Actor, pub: Publication, user_id) -> None:
    """End ``user_id``'s membership of ``pub`` (audited ``publication.member_remove``); not a member: 404."""
    require_role(actor, MEMBER_MANAGERS)
    user = _member_user(db, user_id)
    member = db.scalar(select(PublicationMember).where(PublicationMember.publication_id == pub.id,
                                                       PublicationMember.user_id == user.id))
    if member is None:
        raise NotFound("member", user_id)
    db.delete(member)
    audit(db, actor, "publication.member_remove", "publication", pub.id, user_id=user.id, email=user.email)
    db.commit()


def readable_publications(db: Session, actor: Actor) -> set[int] | None:
    """The publication ids whose readership ``actor`` may read: None for all (admins, editors), the member
    publications for a designer, an empty set for anyone else."""
    if actor.role in READ_ALL:
        return None
    if actor.role in MEMBER_ROLES and actor.user_id is not None:
        return set(db.scalars(select(PublicationMember.publication_id)
                              .where(PublicationMember.user_id == actor.user_id)))
    return set()
