"""SQL for the team server's users, API tokens and per-resource grants.

There are no passwords. A user holds API tokens, each ``rt_<token_id>_<secret>``: the id
finds the row, and only the SHA-256 of the secret is stored, compared in constant time. A
plain SHA-256 is enough here (unlike for passwords): the secret is 256 random bits, so
there is nothing to guess from its hash. The plain token exists once, in the value
``create_token`` returns.

A user's role (reader, writer, admin) gives a level everywhere; a grant gives a level on
one experiment, model or deployment, up or down. How the two combine is
``ratchet.server.auth.Principal``'s business; this module stores them.

Every name is put in canonical form on write and on lookup (``ratchet.names``), so two
spellings of one user or one model cannot hold two different grants.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ratchet.clock import now_ms as _now_ms
from ratchet.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from ratchet.ids import new_id
from ratchet.names import check_name, deployment_name, experiment_name, model_name
from ratchet.store import schema as t
from ratchet.store.database import Database

ROLES = ("reader", "writer", "admin")
LEVELS = ("none", "read", "write", "admin")
KINDS = ("experiment", "model", "deployment")
TOKEN_PREFIX = "rt_"
MAX_LABEL_LENGTH = 256
# last_used_at is a hint for people ("is this token still used?"), not a log: one write a
# minute per token at most, so a busy client does not turn every request into a write.
LAST_USED_RESOLUTION_MS = 60_000

_USER = re.compile(r"[a-z0-9][a-z0-9._@+-]{0,127}")
_TOKEN = re.compile(r"rt_([0-9a-f]{32})_([A-Za-z0-9_-]{16,128})")
# Compared against when the token id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hashlib.sha256(b"ratchet: no such token").hexdigest()


@dataclass(frozen=True)
class User:
    """Someone (or some job) that calls the server. Times are epoch ms (UTC)."""

    name: str
    role: str
    created_at: int
    disabled_at: int | None = None


@dataclass(frozen=True)
class Grant:
    """``user_name``'s level on one resource: overrides the role's level there."""

    user_name: str
    kind: str
    resource: str
    level: str


@dataclass(frozen=True)
class TokenRecord:
    """What is known about a token: never its secret nor the secret's hash."""

    token_id: str
    user_name: str
    label: str | None
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: ``token`` is the plain text, returned this once only."""

    token: str
    token_id: str
    user_name: str
    label: str | None
    created_at: int
    expires_at: int | None = None


# ------------------------------------------------------------------ checks
def user_name(name: object) -> str:
    """A user name in canonical form: NFKC, trimmed, lower case, then ASCII letters,
    digits and ``. _ @ + -`` (an e-mail address fits). ``Alice`` and ``alice`` are one user."""
    text = check_name("user", name).lower()
    if not _USER.fullmatch(text):
        raise InvalidInput(
            f"user name {name!r} is not allowed: use 1-128 ASCII letters, digits, '.', '_', "
            "'@', '+' or '-', starting with a letter or digit")
    return text


def check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    return str(role)


def check_level(level: object) -> str:
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    return str(level)


def resource_name(kind: object, resource: object) -> tuple[str, str]:
    """``(kind, resource)`` checked, the name in the canonical form of its kind."""
    if kind == "experiment":
        return "experiment", experiment_name(resource)
    if kind == "model":
        return "model", model_name(resource)
    if kind == "deployment":
        return "deployment", deployment_name(resource)
    raise InvalidInput(f"a grant's kind must be one of {', '.join(KINDS)}; got {kind!r}")


def _label(label: object) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str) or len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput(f"a token label must be text of at most {MAX_LABEL_LENGTH} "
                           f"characters; got {str(label)[:40]!r}")
    return check_name("token label", label)


def _lookup_user(name: object) -> str | None:
    """The canonical form of ``name`` for a lookup, or None when no user can have it."""
    try:
        return user_name(name)
    except InvalidInput:
        return None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: object) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed token, else None."""
    if not isinstance(token, str):
        return None
    found = _TOKEN.fullmatch(token.strip())
    return None if found is None else (found.group(1), found.group(2))


def _user(row: Any) -> User:
    return User(name=row.name, role=row.role, created_at=row.created_at,
                disabled_at=row.disabled_at)


def _token(row: Any) -> TokenRecord:
    return TokenRecord(token_id=row.token_id, user_name=row.user_name, label=row.label,
                       created_at=row.created_at, expires_at=row.expires_at,
                       revoked_at=row.revoked_at, last_used_at=row.last_used_at)


def _keep_an_admin(conn: Any, row: Any, values: dict[str, Any]) -> None:
    """Conflict if the change would leave no enabled admin (the server then has nobody
    who can manage users; only the server's own workspace could repair it)."""
    was_admin = row.role == "admin" and row.disabled_at is None
    stays_admin = (values.get("role", row.role) == "admin"
                   and values.get("disabled_at", row.disabled_at) is None)
    if not was_admin or stays_admin:
        return
    u = t.users
    others = conn.execute(select(u.c.name).where(u.c.role == "admin",
                                                 u.c.disabled_at.is_(None),
                                                 u.c.name != row.name)
                          .limit(1).with_for_update()).first()
    if others is None:
        raise Conflict(f"user {row.name!r} is the last enabled admin; make another user "
                       "admin first (`ratchet users set-role NAME admin`)")


def _no_user(name: object) -> NotFound:
    return NotFound(f"no user named {name!r} (see `ratchet users list`; create one with "
                    "`ratchet users create NAME --role reader|writer|admin`)")


class AuthStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---------------------------------------------------------------- users
    def create_user(self, name: str, role: str) -> User:
        """Add a user with ``role`` (reader, writer or admin); AlreadyExists if taken."""
        canonical = user_name(name)
        role = check_role(role)
        now = _now_ms()
        try:
            with self.db.write() as conn:
                taken = conn.execute(select(t.users.c.name)
                                     .where(t.users.c.name == canonical)).first()
                if taken is not None:
                    raise AlreadyExists(f"user {canonical!r} already exists (see "
                                        "`ratchet users list`)")
                conn.execute(insert(t.users).values(name=canonical, role=role,
                                                    created_at=now, disabled_at=None))
        except SAIntegrityError:  # a concurrent create of the same name won
            raise AlreadyExists(f"user {canonical!r} already exists") from None
        return User(canonical, role, now, None)

    def get_user(self, name: str) -> User:
        canonical = _lookup_user(name)
        with self.db.read() as conn:
            row = None if canonical is None else conn.execute(
                select(t.users).where(t.users.c.name == canonical)).first()
        if row is None:
            raise _no_user(name)
        return _user(row)

    def list_users(self) -> list[User]:
        """Every user, disabled ones included, by name."""
        with self.db.read() as conn:
            rows = conn.execute(select(t.users).order_by(t.users.c.name)).all()
        return [_user(r) for r in rows]

    def set_role(self, name: str, role: str) -> User:
        role = check_role(role)
        return self._update_user(name, role=role)

    def disable_user(self, name: str) -> User:
        """Stop a user: every token of theirs is refused from now on (kept, so that
        ``enable_user`` brings them back). Disabling twice keeps the first time."""
        user = self.get_user(name)
        if user.disabled_at is not None:
            return user
        return self._update_user(user.name, disabled_at=_now_ms())

    def enable_user(self, name: str) -> User:
        """Undo ``disable_user``: the user's unexpired, unrevoked tokens work again."""
        return self._update_user(name, disabled_at=None)

    def _update_user(self, name: str, **values: Any) -> User:
        canonical = _lookup_user(name)
        u = t.users
        with self.db.write() as conn:
            row = None if canonical is None else conn.execute(
                select(u).where(u.c.name == canonical).with_for_update()).first()
            if row is None:
                raise _no_user(name)
            _keep_an_admin(conn, row, values)
            conn.execute(update(u).where(u.c.name == canonical).values(**values))
        return self.get_user(row.name)

    # ---------------------------------------------------------------- grants
    def grant(self, user: str, kind: str, resource: str, level: str) -> Grant:
        """Give ``user`` ``level`` (none, read, write, admin) on one experiment, model or
        deployment, replacing an earlier grant there. The resource need not exist yet."""
        canonical = user_name(user)
        kind, resource = resource_name(kind, resource)
        level = check_level(level)
        g = t.grants
        stmt = self.db.upsert(g).values(user_name=canonical, kind=kind, resource=resource,
                                        level=level)
        stmt = stmt.on_conflict_do_update(index_elements=[g.c.user_name, g.c.kind,
                                                          g.c.resource],
                                          set_={"level": stmt.excluded.level})
        with self.db.write() as conn:
            exists = conn.execute(select(t.users.c.name)
                                  .where(t.users.c.name == canonical)).first()
            if exists is None:
                raise _no_user(user)
            conn.execute(stmt)
        return Grant(canonical, kind, resource, level)

    def revoke_grant(self, user: str, kind: str, resource: str) -> None:
        """Remove ``user``'s grant on a resource (their role's level applies there again)."""
        canonical = user_name(user)
        kind, resource = resource_name(kind, resource)
        g = t.grants
        with self.db.write() as conn:
            result = conn.execute(delete(g).where(g.c.user_name == canonical, g.c.kind == kind,
                                                  g.c.resource == resource))
        if result.rowcount == 0:
            self.get_user(canonical)  # NotFound for an unknown user
            raise NotFound(f"user {canonical!r} has no grant on {kind} {resource!r} (see "
                           f"`ratchet users list`)")

    def grants_of(self, user: str) -> list[Grant]:
        """``user``'s grants, by kind and resource (empty for an unknown user)."""
        canonical = _lookup_user(user)
        if canonical is None:
            return []
        g = t.grants
        with self.db.read() as conn:
            rows = conn.execute(select(g).where(g.c.user_name == canonical)
                                .order_by(g.c.kind, g.c.resource)).all()
        return [Grant(r.user_name, r.kind, r.resource, r.level) for r in rows]

    # ---------------------------------------------------------------- tokens
    def create_token(self, user: str, *, label: str | None = None,
                     expires_at: int | None = None) -> IssuedToken:
        """A new API token for ``user``: the plain token is in the result and nowhere else
        (only the SHA-256 of its secret is stored). ``expires_at`` is epoch ms."""
        canonical = user_name(user)
        label = _label(label)
        now = _now_ms()
        if expires_at is not None and (isinstance(expires_at, bool)
                                       or not isinstance(expires_at, int)
                                       or expires_at <= now):
            raise InvalidInput(f"a token's expiry must be a time in the future (epoch ms); "
                               f"got {expires_at!r}")
        token_id = new_id()
        secret = secrets.token_urlsafe(32)
        with self.db.write() as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == canonical)).first()
            if row is None:
                raise _no_user(user)
            if row.disabled_at is not None:
                raise Conflict(f"user {canonical!r} is disabled; enable them first "
                               f"(`ratchet users enable {canonical}`)")
            conn.execute(insert(t.api_tokens).values(
                token_id=token_id, user_name=canonical, label=label, secret_hash=_hash(secret),
                created_at=now, expires_at=expires_at, revoked_at=None, last_used_at=None))
        return IssuedToken(token=f"{TOKEN_PREFIX}{token_id}_{secret}", token_id=token_id,
                           user_name=canonical, label=label, created_at=now,
                           expires_at=expires_at)

    def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        """Tokens (revoked and expired ones too), oldest first; only ``user``'s if given."""
        k = t.api_tokens
        query = select(k).order_by(k.c.created_at, k.c.token_id)
        if user is not None:
            canonical = _lookup_user(user)
            if canonical is None:
                return []
            query = query.where(k.c.user_name == canonical)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [_token(r) for r in rows]

    def _token_record(self, token_id: str) -> TokenRecord:
        k = t.api_tokens
        with self.db.read() as conn:
            row = conn.execute(select(k).where(k.c.token_id == str(token_id))).first()
        if row is None:
            raise NotFound(f"no token with id {token_id!r} (see `ratchet tokens list`)")
        return _token(row)

    def revoke_token(self, token_id: str) -> TokenRecord:
        """Revoke a token for good; revoking it again keeps the first time."""
        k = t.api_tokens
        with self.db.write() as conn:
            conn.execute(update(k).where(k.c.token_id == str(token_id),
                                         k.c.revoked_at.is_(None))
                         .values(revoked_at=_now_ms()))
        return self._token_record(token_id)

    def verify_token(self, token: str, now_ms: int | None = None) -> User | None:
        """The user a presented token belongs to, or None when it is malformed, unknown,
        wrong, expired, revoked, or its user is disabled. The secret's hash is compared in
        constant time, and an unknown id costs the same comparison."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        now = _now_ms() if now_ms is None else now_ms
        k, u = t.api_tokens, t.users
        with self.db.read() as conn:
            row = conn.execute(
                select(k.c.secret_hash, k.c.expires_at, k.c.revoked_at, k.c.last_used_at,
                       u.c.name, u.c.role, u.c.created_at, u.c.disabled_at)
                .join(u, u.c.name == k.c.user_name)
                .where(k.c.token_id == token_id)).first()
        matches = hmac.compare_digest(_hash(secret),
                                      row.secret_hash if row is not None else _DUMMY_HASH)
        if row is None or not matches:
            return None
        if (row.revoked_at is not None or row.disabled_at is not None
                or (row.expires_at is not None and row.expires_at <= now)):
            return None
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION_MS:
            with self.db.write() as conn:
                conn.execute(update(k).where(k.c.token_id == token_id)
                             .values(last_used_at=now))
        return User(row.name, row.role, row.created_at, row.disabled_at)


__all__ = [
    "KINDS", "LEVELS", "ROLES", "AuthStore", "Grant", "IssuedToken", "TokenRecord", "User",
    "check_level", "check_role", "parse_token", "resource_name", "user_name",
]
