"""The online store on Redis (``redis://[:password@]host:port/db``), for serving at scale.

One string value per (view, encoded entity key), under ``ratchet:features:<view>:<key>``
(view names cannot hold ``:``; the encoded key is JSON, so the name is unambiguous). The
value is ``<event µs>:<created µs or empty>:<view version>:<JSON object of values>``: the
header lets the write script compare entries without parsing their values, and a read of
any number of (view, key) pairs is one ``MGET``, one round trip.

Writes go through a Lua script (one ``EVALSHA`` per chunk of rows, the chunks of one write
pipelined in one round trip): for each row it keeps
the stored entry when that one is newer by (event time, created time with null lowest) and
replaces it otherwise, so the newest-wins rule holds against concurrent writers and a chunk
is applied atomically. All of a chunk's keys are in one script call, so a Redis Cluster
(keys in different slots) is not supported: use one Redis server (with replicas).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ratchet.errors import InvalidInput, StoreUnavailable
from ratchet.features.online_store import EncodedRow, Lookup, StoredFeatures
from ratchet.redaction import redact_url

if TYPE_CHECKING:
    import redis

KEY_PREFIX = "ratchet:features:"
_CHUNK = 1000  # rows per script call, keys per MGET

# KEYS: the entries' names; ARGV: their new values, in order. Compares headers only.
_WRITE_SCRIPT = """
local written = 0
for i, name in ipairs(KEYS) do
  local new = ARGV[i]
  local take = true
  local old = redis.call('GET', name)
  if old then
    local oe, oc = string.match(old, '^(%-?%d+):(%-?%d*):')
    if oe then
      local ne, nc = string.match(new, '^(%-?%d+):(%-?%d*):')
      ne = tonumber(ne)
      oe = tonumber(oe)
      if ne < oe then
        take = false
      elseif ne == oe then
        local ncn = -math.huge
        local ocn = -math.huge
        if nc ~= '' then ncn = tonumber(nc) end
        if oc ~= '' then ocn = tonumber(oc) end
        if ncn < ocn then take = false end
      end
    end
  end
  if take then
    redis.call('SET', name, new)
    written = written + 1
  end
end
return written
"""


def entry_name(view: str, key: str) -> str:
    return f"{KEY_PREFIX}{view}:{key}"


def _decode(raw: bytes | str | None) -> StoredFeatures | None:
    if raw is None:
        return None
    text = raw if isinstance(raw, str) else raw.decode()
    event, created, version, payload = text.split(":", 3)
    return StoredFeatures(int(event), int(created) if created else None, int(version),
                          payload)


class RedisOnlineStore:
    """The online store on one Redis database (see the module's description)."""

    def __init__(self, uri: str) -> None:
        try:
            import redis
        except ImportError:
            raise InvalidInput("the online store is on Redis but the redis package is not "
                               "installed: pip install 'ratchet[redis]'") from None
        self.uri = redact_url(uri)
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                uri, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)
        except ValueError as exc:
            raise InvalidInput(f"online store {self.uri!r} is not a Redis URL "
                               f"(redis://host:port/db): {exc}") from None
        self._script: Any = self._client.register_script(_WRITE_SCRIPT)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        import redis

        try:
            yield
        except redis.exceptions.ConnectionError as exc:  # also timeouts
            raise StoreUnavailable(f"online store {self.uri!r} cannot be reached while "
                                   f"{doing}: {exc}; is Redis running there?") from None
        except redis.exceptions.ResponseError as exc:
            raise StoreUnavailable(f"online store {self.uri!r}: Redis refused {doing}: "
                                   f"{exc}") from None
        except redis.exceptions.RedisError as exc:
            raise StoreUnavailable(f"online store {self.uri!r}: {doing} failed: {exc}"
                                   ) from None

    def write(self, view: str, view_version: int, rows: Sequence[EncodedRow]) -> int:
        if not rows:
            return 0
        with self._errors(f"writing {len(rows)} rows of {view!r}"):
            pipe = self._client.pipeline(transaction=False)  # every chunk in one round trip
            for i in range(0, len(rows), _CHUNK):
                chunk = rows[i:i + _CHUNK]
                names = [entry_name(view, key) for key, _e, _c, _p in chunk]
                values = [f"{event}:{'' if created is None else created}:{view_version}:"
                          f"{payload}" for _k, event, created, payload in chunk]
                self._script(keys=names, args=values, client=pipe)
            pipe.execute()
        return len(rows)

    def read(self, lookups: Sequence[Lookup]) -> list[StoredFeatures | None]:
        if not lookups:
            return []
        names = [entry_name(view, key) for view, key in lookups]
        with self._errors("reading features"):
            if len(names) <= _CHUNK:
                raw = self._client.mget(names)
            else:
                pipe = self._client.pipeline(transaction=False)
                for i in range(0, len(names), _CHUNK):
                    pipe.mget(names[i:i + _CHUNK])
                raw = [value for part in pipe.execute() for value in part]
        return [_decode(value) for value in raw]

    def _names(self, view: str) -> Iterator[bytes]:
        pattern = f"{KEY_PREFIX}{_glob_escape(view)}:*"
        yield from self._client.scan_iter(match=pattern, count=1000)

    def delete_view(self, view: str) -> int:
        deleted = 0
        with self._errors(f"deleting {view!r}"):
            batch: list[bytes] = []
            for name in self._names(view):
                batch.append(name)
                if len(batch) >= _CHUNK:
                    deleted += int(self._client.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(self._client.unlink(*batch))
        return deleted

    def count(self, view: str) -> int:
        with self._errors(f"counting {view!r}"):
            return sum(1 for _ in self._names(view))

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({self.uri!r})"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
