"""Secrets never reach a log, an error message, a repr or the CLI's output.

Two kinds of URL carry them: database URLs (``postgresql://user:PASSWORD@host/db``, or
``?password=...`` in the query) and webhook URLs, whose path or query usually *is* the
token (``https://hooks.slack.com/services/T000/B000/XXXX``). The first keep everything
but the password; the second keep only scheme and host.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_KEYS = re.compile(r"pass|secret|token|key|auth|credential|signature", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` with its password (userinfo or a secret-looking query value) masked;
    the rest kept so the message still says which server and database."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return MASK
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if has_password else f"{user}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_KEYS.search(k) else v) for k, v in pairs],
                          safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing secret; urlunsplit would turn sqlite://// into sqlite://
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_endpoint(url: str) -> str:
    """Scheme and host only (``https://hooks.example/***``): for URLs whose path is a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    shown = f"[{host}]" if ":" in host else host
    rest = f"/{MASK}" if (parts.path.strip("/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{shown}{port}{rest}"


def redact_text(text: str) -> str:
    """Every URL inside ``text`` (an exception message, a log line) passed through
    ``redact_url``."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


__all__ = ["MASK", "redact_endpoint", "redact_text", "redact_url"]
