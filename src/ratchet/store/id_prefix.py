"""Ids people type: a full id or a unique prefix, one rule for every kind of record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from sqlalchemy import Column

    from ratchet.store.database import Database

MIN_PREFIX = 6
_HEX = "0123456789abcdef"


def resolve_id(db: Database, column: Column[str], given: object, *, what: str,
               listing: str) -> str:
    """The full id in ``column`` that ``given`` is, or starts with (at least
    ``MIN_PREFIX`` hex digits, matching exactly one). ``what`` names the record in
    messages ("run", "pipeline run"); ``listing`` is the command that shows them."""
    from sqlalchemy import select

    if not isinstance(given, str) or not given.strip():
        raise InvalidInput(f"give a {what} id")
    wanted = given.strip().lower()
    with db.read() as conn:
        if conn.execute(select(column).where(column == wanted)).first():
            return wanted
        if len(wanted) < MIN_PREFIX or wanted.strip(_HEX):  # LIKE must see hex digits only
            raise NotFound(f"no {what} with id {wanted!r} (a prefix is {MIN_PREFIX}+ hex "
                           "digits)")
        found = conn.execute(select(column).where(column.like(f"{wanted}%")).limit(2)
                             ).scalars().all()
    if not found:
        raise NotFound(f"no {what} with id {wanted!r}; `{listing}` shows them")
    if len(found) > 1:
        raise InvalidInput(f"{what} id prefix {wanted!r} is ambiguous; give more of it")
    return str(found[0])
