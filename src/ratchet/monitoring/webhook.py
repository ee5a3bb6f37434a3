"""POST an alert to a webhook: http(s) only, public addresses only, no redirects, a
timeout, the token never logged.

A webhook URL usually carries its secret in the path or query, so it is shown as
``https://hooks.example/***``. The post goes through ``ratchet.net_guard``: the host is
resolved and checked when the connection is made, and the socket goes to the checked
address, so neither ``http://169.254.169.254/`` nor a name that resolves (or re-resolves)
to a loopback or private address makes the monitor call an internal service. A hook on a
private address is allowed only with ``RATCHET_ALLOW_PRIVATE_WEBHOOKS=1`` (or
``allow_private=True``). Redirects are not followed (a 3xx is a failed delivery). A failed
post is returned (and logged as a warning), never raised: the alert it carried is already
in the monitor's stored result and log.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ratchet.errors import ConfigError, InvalidInput
from ratchet.json_safe import dumps
from ratchet.net_guard import OutboundRefused, check_outbound, request
from ratchet.redaction import redact_endpoint

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0
SCHEMES = ("http", "https")
ALLOW_PRIVATE_ENV = "RATCHET_ALLOW_PRIVATE_WEBHOOKS"
MAX_ANSWER_BYTES = 65536
_YES = frozenset({"1", "true", "yes", "on"})
_NO = frozenset({"", "0", "false", "no", "off"})


def private_webhooks_allowed() -> bool:
    """``RATCHET_ALLOW_PRIVATE_WEBHOOKS``: 1 lets webhooks reach loopback, private and
    link-local addresses (a hook on this host or network, on purpose); off by default."""
    value = os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ConfigError(f"{ALLOW_PRIVATE_ENV}={os.environ[ALLOW_PRIVATE_ENV]!r}: use 1 (webhooks "
                      "may reach private addresses) or 0 (public addresses only, the default)")


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


def validate_webhook(url: object, where: str = "webhook", *,
                     allow_private: bool | None = None) -> str:
    """``url`` if it is an absolute http(s) URL with a host, not written as a loopback,
    private or link-local address unless ``allow_private`` (default:
    ``RATCHET_ALLOW_PRIVATE_WEBHOOKS``); else a one-line InvalidInput. A host *name* is
    resolved and checked only when posting (``post_json``)."""
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
    try:  # an address written in the URL is judged now; a name, when posting
        check_outbound(url, resolve=False, allow_private=private_webhooks_allowed()
                       if allow_private is None else allow_private)
    except OutboundRefused as e:
        raise InvalidInput(f"{where} {e}; set {ALLOW_PRIVATE_ENV}=1 to allow it") from None
    return url


def post_json(url: str, payload: dict[str, Any], *, timeout: float = TIMEOUT_S,
              what: str = "alert", allow_private: bool | None = None) -> WebhookOutcome:
    """POST ``payload``; never raises for a delivery failure (it is returned and logged).
    ``allow_private`` (default: ``RATCHET_ALLOW_PRIVATE_WEBHOOKS``) lets the hook be on a
    loopback, private or link-local address."""
    if allow_private is None:
        allow_private = private_webhooks_allowed()
    url = validate_webhook(url, allow_private=allow_private)
    shown = redact_endpoint(url)
    body = dumps(payload).encode()
    status: int | None = None
    try:
        answer = request("POST", url, body=body, timeout=timeout,
                         headers={"Content-Type": "application/json"},
                         allow_private=allow_private, follow_redirects=False,
                         max_response_bytes=MAX_ANSWER_BYTES)
        status = answer.status
        if 200 <= status < 300:
            return WebhookOutcome(shown, True, status=status)
        error = (f"answered {status} (redirects are not followed)" if 300 <= status < 400
                 else f"answered {status}")
    except OutboundRefused as e:  # refused at connect time: nothing was sent
        error = f"refused: {e}; set {ALLOW_PRIVATE_ENV}=1 to allow it"
    except Exception as e:  # any delivery failure: the alert is kept, not lost
        error = _describe(e).replace(url, shown)
    log.warning("%s: webhook %s failed: %s; the alert is kept in the monitor result",
                what, shown, error)
    return WebhookOutcome(shown, False, status=status, error=error)


def _describe(e: BaseException) -> str:
    """The failure in one line, at most 200 characters."""
    reason = getattr(e, "reason", None)
    text = str(reason if reason is not None else e) or type(e).__name__
    return " ".join(f"{type(e).__name__}: {text}".split())[:200]


__all__ = ["ALLOW_PRIVATE_ENV", "WebhookOutcome", "post_json", "private_webhooks_allowed",
           "validate_webhook"]
