"""POST an alert to a webhook: http(s) only, no redirects, a timeout, the token never logged.

A webhook URL usually carries its secret in the path or query, so it is shown as
``https://hooks.example/***``. Redirects are not followed: a hook that answers 302 to
``http://127.0.0.1/...`` would otherwise make the monitor call an internal service. A
failed post is returned (and logged as a warning), never raised: the alert it carried is
already in the monitor's stored result and log.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ratchet.errors import InvalidInput
from ratchet.json_safe import dumps
from ratchet.redaction import redact_endpoint

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class WebhookOutcome:
    webhook: str
    """The URL as it may be shown (``https://host/***``)."""
    delivered: bool
    status: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"webhook": self.webhook, "delivered": self.delivered, "status": self.status,
                "error": self.error}


def validate_webhook(url: object, where: str = "webhook") -> str:
    """``url`` if it is an absolute http(s) URL with a host; else a one-line InvalidInput."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"{where}: give an http(s) URL, e.g. https://hooks.example/T0/B0")
    url = url.strip()
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises on a non-numeric port
    except ValueError as e:
        raise InvalidInput(f"{where} {redact_endpoint(url)!r}: not a valid URL ({e})") from None
    if parts.scheme.lower() not in SCHEMES or not host:
        shown = f"{parts.scheme}:" if parts.scheme else redact_endpoint(url)
        raise InvalidInput(
            f"{where} {shown!r}: only absolute http:// or https:// URLs are accepted "
            "(e.g. https://hooks.example/T0/B0)")
    if any(ord(c) < 33 for c in url):
        raise InvalidInput(f"{where} {redact_endpoint(url)!r}: the URL has spaces or control "
                           "characters; percent-encode them")
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def _opener() -> urllib.request.OpenerDirector:
    """Only http and https handlers: no file://, ftp:// or data: even by accident."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(),
                    urllib.request.HTTPSHandler(), _NoRedirect(),
                    urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def post_json(url: str, payload: dict[str, Any], *, timeout: float = TIMEOUT_S,
              what: str = "alert") -> WebhookOutcome:
    """POST ``payload``; never raises for a delivery failure (it is returned and logged)."""
    import urllib.error

    url = validate_webhook(url)
    shown = redact_endpoint(url)
    body = dumps(payload).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with _opener().open(request, timeout=timeout) as response:
            response.read(65536)
            return WebhookOutcome(shown, True, status=response.status)
    except urllib.error.HTTPError as e:
        status: int | None = e.code
        error = (f"answered {e.code} (redirects are not followed)" if 300 <= e.code < 400
                 else f"answered {e.code}")
    except Exception as e:  # any delivery failure: the alert is kept, not lost
        status = None
        error = _describe(e).replace(url, shown)
    log.warning("%s: webhook %s failed: %s; the alert is kept in the monitor result",
                what, shown, error)
    return WebhookOutcome(shown, False, status=status, error=error)


def _describe(e: BaseException) -> str:
    """The failure without the URL (urllib puts the full URL in some messages)."""
    reason = getattr(e, "reason", None)
    text = str(reason if reason is not None else e) or type(e).__name__
    return " ".join(f"{type(e).__name__}: {text}".split())[:200]


__all__ = ["WebhookOutcome", "post_json", "validate_webhook"]
