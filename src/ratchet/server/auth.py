"""Who is calling the team server, and what they may do: pure logic, no web framework.

- ``Principal``: a caller's name, role and per-resource grants, and the level they have on
  a resource. A grant on a resource wins there (up or down: ``none`` shuts a writer out of
  one model); elsewhere the role's level applies; the admin role is admin everywhere.
- ``Authenticator``: turns an ``Authorization`` header into a ``Principal``. Tokens only
  (``Bearer rt_…``): there are no passwords. Successful checks are cached for a few
  seconds, so a busy client does not cost a database read per call and a revocation, a
  disabled user or a changed grant still takes effect within that bound. Failed attempts
  are counted per client address in a sliding minute; past the limit every attempt from
  that address is refused, with a correct token too, so guessing cannot go on.

Another way of signing in (OIDC, a proxy's header) is another object with the same
``authenticate(authorization, client) -> Principal`` method, built on ``principal_of``.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import shlex
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from ratchet.errors import Forbidden, InvalidInput, TooManyAttempts, Unauthorized
from ratchet.names import lookup_name

if TYPE_CHECKING:
    from ratchet.store.auth_store import AuthStore, Grant, User

LEVELS = ("none", "read", "write", "admin")
ROLE_LEVEL = {"reader": "read", "writer": "write", "admin": "admin"}
CACHE_SECONDS = 5.0
WINDOW_SECONDS = 60.0
MAX_CACHED = 10_000
MAX_TRACKED_CLIENTS = 100_000

HOW_TO_GET_A_TOKEN = ("send `Authorization: Bearer <token>`; an admin creates a token with "
                      "`ratchet tokens create --user NAME` on the server's workspace")


def _rank(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        raise InvalidInput(f"permission level must be one of {', '.join(LEVELS)}; got "
                           f"{level!r}") from None


@dataclass(frozen=True, eq=False)
class Principal:
    """An authenticated caller. ``grants`` maps ``(kind, resource)`` to a level.

    Compared by identity: ``LOCAL_ADMIN`` is one object, and a signed-in user who happens
    to share its name and role is still not it."""

    name: str
    role: str
    grants: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grants", MappingProxyType(dict(self.grants)))

    def level_for(self, kind: str | None = None, resource: str | None = None) -> str:
        """The caller's level on one resource (or, without one, the role's level)."""
        if self.role == "admin":
            return "admin"
        if kind is not None and resource is not None:
            granted = self.grants.get((kind, str(lookup_name(resource))))
            if granted is not None:
                return granted
        return ROLE_LEVEL.get(self.role, "none")

    def can(self, level: str, kind: str | None = None, resource: str | None = None) -> bool:
        """Whether the caller has at least ``level`` on the resource (or by role)."""
        return _rank(self.level_for(kind, resource)) >= _rank(level)

    def can_anywhere(self, level: str) -> bool:
        """Whether the caller reaches ``level`` on something: by role or by any grant.
        The router asks this before the body is read; the handler then checks the one
        resource it touches with ``require``."""
        wanted = _rank(level)
        if _rank(self.level_for()) >= wanted:
            return True
        return any(_rank(granted) >= wanted for granted in self.grants.values())

    def require(self, level: str, kind: str | None = None, resource: str | None = None) -> None:
        """Forbidden unless the caller has at least ``level`` there."""
        if self.can(level, kind, resource):
            return
        if kind is not None and resource is not None:
            where = f"on {kind} {resource!r}"
            hint = (f"an admin can grant it: `ratchet users grant {shlex.quote(self.name)} "
                    f"--{kind} {shlex.quote(str(resource))} --level {level}`")
        elif level == "admin":
            where, hint = "here", "only an admin may"
        else:
            role = "writer" if level == "write" else "reader"
            where = "here"
            hint = (f"an admin can change the role: `ratchet users set-role "
                    f"{shlex.quote(self.name)} {role}`")
        raise Forbidden(f"user {self.name!r} (role {self.role}) may not {level} {where}; "
                        f"{hint}")


def _local_name() -> str:
    try:
        return getpass.getuser() or "local"
    except Exception:  # no user name in the environment nor the password database
        return "local"


# The caller when authentication is off (a loopback server, or `--no-auth`): the person
# at this machine, who could open the database directly anyway.
LOCAL_ADMIN = Principal(name=_local_name(), role="admin", grants={})


def principal_of(user: User, grants: Iterable[Grant]) -> Principal:
    """The principal of a stored user and their grants (for any way of signing in)."""
    return Principal(name=user.name, role=user.role,
                     grants={(g.kind, g.resource): g.level for g in grants})


class FailureLimiter:
    """Failed attempts per client in a sliding window; thread-safe."""

    def __init__(self, per_window: int, *, window: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_window < 1:
            raise InvalidInput(f"failures_per_minute must be at least 1; got {per_window!r}")
        self.per_window = per_window
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """TooManyAttempts while ``client`` has used up its failures in the window."""
        with self._lock:
            now = self._clock()
            recent = self._recent(client, now)
            if recent is None or len(recent) < self.per_window:
                return
            retry_after = max(1, math.ceil(recent[0] + self.window - now))
        raise TooManyAttempts(f"too many failed attempts to sign in from {client}; try again "
                              f"in {retry_after} s", retry_after=retry_after)

    def fail(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            recent = self._recent(client, now)
            if recent is None:
                if len(self._failures) >= MAX_TRACKED_CLIENTS:
                    self._forget_quiet(now)
                recent = self._failures[client] = deque()
            recent.append(now)
            while len(recent) > self.per_window:  # only the newest ones matter
                recent.popleft()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        recent = self._failures.get(client)
        if recent is None:
            return None
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if not recent:
            del self._failures[client]
            return None
        return recent

    def _forget_quiet(self, now: float) -> None:
        for client in list(self._failures):
            self._recent(client, now)
        if len(self._failures) >= MAX_TRACKED_CLIENTS:  # a flood of addresses: start over
            self._failures.clear()


class Authenticator:
    """API tokens against the ``AuthStore``, with a short cache and a failure limiter."""

    def __init__(self, auth_store: AuthStore, *, required: bool,
                 failures_per_minute: int = 10, cache_seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = auth_store
        self.required = required
        self.cache_seconds = cache_seconds
        self.limiter = FailureLimiter(failures_per_minute, clock=clock)
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, client: str) -> Principal:
        """The caller behind an ``Authorization`` header. Without one: ``LOCAL_ADMIN``
        when authentication is not required, else Unauthorized. A header that is there is
        always checked. TooManyAttempts once ``client`` failed too often this minute."""
        self.limiter.check(client)
        if not authorization or not authorization.strip():
            if not self.required:
                return LOCAL_ADMIN
            raise Unauthorized(f"this server requires an API token: {HOW_TO_GET_A_TOKEN}")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self.limiter.fail(client)
            raise Unauthorized(f"the Authorization header must be `Bearer <token>`: "
                               f"{HOW_TO_GET_A_TOKEN}")
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        cached = self._cached(key)
        if cached is not None:
            return cached
        user = self.store.verify_token(token)
        if user is None:
            self.limiter.fail(client)
            raise Unauthorized("the API token is not valid (unknown, expired or revoked, or "
                               f"its user is disabled): {HOW_TO_GET_A_TOKEN}")
        found = self.principal_of(user)
        self._remember(key, found)
        return found

    def principal_of(self, user: User) -> Principal:
        """The principal of a verified user, with their current grants."""
        return principal_of(user, self.store.grants_of(user.name))

    def forget(self) -> None:
        """Drop every cached check (e.g. right after this process revoked a token)."""
        with self._lock:
            self._cache.clear()

    def _cached(self, key: bytes) -> Principal | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._cache[key]
                return None
            return entry[1]

    def _remember(self, key: bytes, found: Principal) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            if len(self._cache) >= MAX_CACHED:
                for stale in [k for k, (until, _) in self._cache.items() if until <= now]:
                    del self._cache[stale]
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[key] = (now + self.cache_seconds, found)


__all__ = [
    "LEVELS", "LOCAL_ADMIN", "ROLE_LEVEL", "Authenticator", "FailureLimiter", "Principal",
    "principal_of",
]
