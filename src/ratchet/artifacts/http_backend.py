"""The blob store of remote mode: blobs on a `ratchet server`, over its artifact routes.

``http_blob_store(client, base_url, ...)`` is a ``BlobStore`` whose backend speaks HTTP
(``/api/v1/blobs/{digest}``, see ``ratchet.server.artifact_routes``), so code written
against ``workspace.blobs`` runs unchanged when ``RATCHET_TRACKING_URI`` points at a
server. The ``BlobStore`` on top still hashes what it uploads and verifies what it reads.

Transfers stream in both directions: an upload is a PUT whose body is the store's chunk
iterator (with ``Content-Length``), a download a GET read as a file. Every call is
idempotent (content-addressed: a PUT of a digest always carries the same bytes), so each
is retried with exponential backoff on connection failures and 502/503/504; a download
cut short resumes where it stopped with a ``Range`` request instead of starting over. An
upload is retried only if nothing of its body was sent yet: the chunks come from an
iterator that cannot be replayed, so a cut upload fails, with nothing stored.

Garbage collection (listing, removing blobs, sweeping the server's temporary files)
belongs to the server: those calls raise, saying to run ``ratchet gc`` there.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

from ratchet.errors import ConfigError, StoreUnavailable
from ratchet.redaction import redact_url

if TYPE_CHECKING:
    import httpx2
    from _typeshed import WriteableBuffer

    from ratchet.artifacts.blob_store import BlobStore, StoredBlob

BLOBS_PATH = "/api/v1/blobs"
RETRY_STATUSES = frozenset({502, 503, 504})
OCTET_STREAM = "application/octet-stream"
# What a server that hashes and fsyncs a large upload may take after its last byte.
_UPLOAD_FINISH_S_PER_GB = 60.0


def http_blob_store(client: httpx2.Client, base_url: str,
                    staging_dir: str | Path | None = None, *,
                    raise_for_error: Callable[[httpx2.Response], None],
                    retries: int = 5, backoff_s: float = 0.2) -> BlobStore:
    """A ``BlobStore`` over the blobs of the `ratchet server` at ``base_url``.

    ``client`` carries the connection pool and the ``Authorization`` header (the remote
    session's); ``raise_for_error`` raises the ratchet error an error response stands
    for (``RemoteSession.raise_for_error``); staging files of writers that build a
    blob before storing it (dataset snapshots) go to ``staging_dir``.
    """
    from ratchet.artifacts.blob_store import BlobStore

    backend = HttpBlobBackend(client, base_url, raise_for_error=raise_for_error,
                              retries=retries, backoff_s=backoff_s)
    return BlobStore.over(backend, root=f"{redact_url(backend.base_url)}{BLOBS_PATH}",
                          staging_dir=staging_dir)


class HttpBlobBackend:
    """The ``BlobStore`` backend protocol over a server's ``/api/v1/blobs`` routes."""

    def __init__(self, client: httpx2.Client, base_url: str, *,
                 raise_for_error: Callable[[httpx2.Response], None],
                 retries: int = 5, backoff_s: float = 0.2) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{redact_url(base_url)!r} is not the http(s):// URL of a "
                              "`ratchet server`")
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._raise_for_error = raise_for_error

    def __repr__(self) -> str:
        return f"HttpBlobBackend({redact_url(self.base_url)!r})"

    def _url(self, digest: str, suffix: str = "") -> str:
        return f"{self.base_url}{BLOBS_PATH}/{digest}{suffix}"

    # -- reading --------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self._head(digest) is not None

    def size(self, digest: str) -> int:
        found = self._head(digest)
        if found is None:
            raise FileNotFoundError(digest)  # BlobStore turns it into NotFound
        return found

    def _head(self, digest: str) -> int | None:
        response = self._send("HEAD", self._url(digest))
        if response.status_code == 404:
            return None
        self._raise_for_error(response)
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            raise StoreUnavailable(f"HEAD {self._url(digest)} answered without a size "
                                   "(Content-Length); is this a ratchet server?")
        return int(length)

    def open_read(self, digest: str) -> BinaryIO:
        return cast(BinaryIO, _Download(self, digest))

    # -- writing --------------------------------------------------------------------

    def claim(self, digest: str) -> bool:
        # No body; the server's guard takes only octet-stream under /api/v1/blobs/.
        response = self._send("POST", self._url(digest, "/claim"), content=b"",
                              headers={"Content-Type": OCTET_STREAM})
        self._raise_for_error(response)
        return bool(response.json().get("exists"))

    def write(self, digest: str, chunks: Iterable[bytes], size: int | None = None) -> None:
        body = _OneShot(chunks)
        headers = {"Content-Type": OCTET_STREAM}
        if size is not None:
            headers["Content-Length"] = str(size)
        response = self._send("PUT", self._url(digest), content=body, headers=headers,
                              timeout=self._upload_timeout(size),
                              can_retry=lambda: not body.started)
        self._raise_for_error(response)

    def write_bytes(self, digest: str, data: bytes) -> None:
        response = self._send("PUT", self._url(digest), content=data,
                              headers={"Content-Type": OCTET_STREAM},
                              timeout=self._upload_timeout(len(data)))
        self._raise_for_error(response)

    def _upload_timeout(self, size: int | None) -> Any:
        """The client's timeouts, with time for the server to finish a large upload."""
        import httpx2

        timeout = self.client.timeout
        if timeout.read is None:
            return timeout
        extra = _UPLOAD_FINISH_S_PER_GB * (size or 0) / 1e9
        return httpx2.Timeout(timeout.connect, read=timeout.read + extra,
                              write=timeout.write, pool=timeout.pool)

    # -- the server's business ------------------------------------------------------

    def now(self) -> float:
        self._server_only("garbage collection")

    def list_blobs(self) -> Iterator[StoredBlob]:
        self._server_only("listing every blob")

    def remove_unused(self, digest: str, unused_since: float) -> bool:
        self._server_only("removing blobs")

    def clean_temp(self, older_than_s: float) -> int:
        self._server_only("sweeping temporary files")

    def _server_only(self, what: str) -> NoReturn:
        raise ConfigError(
            f"{what} runs on the ratchet server, not through it: the blobs are the "
            f"server's ({redact_url(self.base_url)}). Run `ratchet gc` on the server "
            "(with its RATCHET_DB and RATCHET_ARTIFACTS), not with RATCHET_TRACKING_URI set"
        )

    # -- transport ------------------------------------------------------------------

    def _send(self, method: str, url: str, *, content: Any = None,
              headers: dict[str, str] | None = None, timeout: Any = None,
              can_retry: Callable[[], bool] = lambda: True,
              stream: bool = False) -> httpx2.Response:
        """One request, retried with backoff on connection errors and 502/503/504 while
        ``can_retry()``. A streamed response must be closed by the caller."""
        import httpx2

        sent = {"Accept-Encoding": "identity", **(headers or {})}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        attempt = 0
        while True:
            try:
                request = self.client.build_request(method, url, content=content,
                                                    headers=sent, **extra)
                response = self.client.send(request, stream=stream)
            except httpx2.TransportError as exc:
                if attempt < self.retries and can_retry():
                    self._pause(attempt)
                    attempt += 1
                    continue
                raise StoreUnavailable(
                    f"ratchet server {redact_url(self.base_url)} did not answer "
                    f"{method} {_path(url)}: {exc or type(exc).__name__}"
                ) from None
            if (response.status_code in RETRY_STATUSES and attempt < self.retries
                    and can_retry()):
                response.close()
                self._pause(attempt, response.headers.get("retry-after"))
                attempt += 1
                continue
            return response

    def _pause(self, attempt: int, retry_after: str | None = None) -> None:
        delay = self.backoff_s * (2 ** attempt) * (0.5 + random.random())
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 30.0))
        time.sleep(min(delay, 10.0))


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1]


class _OneShot:
    """An upload body over a chunk iterator; ``started`` once a chunk has been taken,
    after which the request cannot be sent again."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.started = False

    def __iter__(self) -> Iterator[bytes]:
        if self.started:
            raise RuntimeError("an upload body can be sent once")
        self.started = True
        for chunk in self._chunks:
            if chunk:
                yield bytes(chunk)


class _Download(io.RawIOBase):
    """A blob's GET response read as a file; a transfer cut short is resumed from the
    byte it stopped at (``Range``), with backoff; it fails after the backend's retry
    count of breaks in a row with no byte received in between."""

    def __init__(self, backend: HttpBlobBackend, digest: str) -> None:
        super().__init__()
        self._backend = backend
        self._digest = digest
        self._url = backend._url(digest)
        self._position = 0
        self._size: int | None = None
        self._response: httpx2.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._buffer = b""
        self._failures = 0
        self._connect()

    def readable(self) -> bool:
        return True

    def _connect(self) -> None:
        headers = {"Range": f"bytes={self._position}-"} if self._position else None
        response = self._backend._send("GET", self._url, headers=headers, stream=True)
        if response.status_code == 404:
            response.close()
            raise FileNotFoundError(self._digest)
        if response.status_code >= 400:
            try:
                response.read()
                self._backend._raise_for_error(response)
            finally:
                response.close()
        start = 0
        if response.status_code == 206:
            content_range = response.headers.get("content-range", "")
            start = int(content_range.removeprefix("bytes ").split("-", 1)[0] or 0)
        if self._size is None:
            length = response.headers.get("content-length", "")
            self._size = int(length) if length.isdigit() else None
        self._response = response
        self._chunks = response.iter_raw()  # as received: a cut loses no buffered bytes
        if start != self._position:  # a server that ignored the range: skip what we have
            self._discard(self._position - start)

    def _discard(self, count: int) -> None:
        while count > 0:
            chunk = self._next_chunk()
            if chunk is None:
                return
            if len(chunk) > count:
                self._buffer = chunk[count:]
            count -= len(chunk)

    def _next_chunk(self) -> bytes | None:
        assert self._chunks is not None
        try:
            return next(self._chunks)
        except StopIteration:
            return None

    def readinto(self, buffer: WriteableBuffer) -> int:
        import httpx2

        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        while not self._buffer:
            try:
                chunk = self._next_chunk()
            except httpx2.TransportError as exc:
                self._resume(exc)
                continue
            if chunk is None:
                if self._size is not None and self._position < self._size:
                    self._resume(None)  # the server stopped early: ask for the rest
                    continue
                return 0
            if chunk:
                self._buffer = chunk
                self._failures = 0  # progress: only breaks in a row count against retries
        n = min(len(view), len(self._buffer))
        view[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        self._position += n
        return n

    def _resume(self, cause: Exception | None) -> None:
        """Reconnect for the bytes from ``_position``, or give up after the retries."""
        self._close_response()
        if self._failures >= self._backend.retries:
            why = f": {cause}" if cause is not None else " (the body ended early)"
            raise StoreUnavailable(
                f"the download of blob {self._digest} from "
                f"{redact_url(self._backend.base_url)} broke off at byte {self._position} "
                f"of {self._size}, {self._failures + 1} times in a row{why}"
            )
        self._backend._pause(self._failures)
        self._failures += 1
        self._connect()

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
            self._chunks = None

    def close(self) -> None:
        self._close_response()
        super().close()


__all__ = ["HttpBlobBackend", "http_blob_store"]
