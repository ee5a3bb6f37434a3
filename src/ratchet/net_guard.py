"""Outbound HTTP that cannot be pointed at the machine's own network (SSRF).

A URL a user or a client hands ratchet (a webhook) is fetched by the server or the
monitor, from inside the network: ``http://169.254.169.254/`` is the cloud's credential
endpoint, ``http://127.0.0.1:5432/`` a local database, ``http://10.0.0.7/admin`` a
neighbour. So every connection is checked **when it is made**, not when the URL is
accepted:

- the host is resolved once (``getaddrinfo``) and refused if *any* address is loopback,
  private (RFC 1918, ``fc00::/7``), link-local (``169.254/16`` with the metadata address,
  ``fe80::/10``), shared (``100.64/10``), unspecified, multicast, reserved or otherwise not
  public, including the IPv4-mapped, NAT64, 6to4 and Teredo forms of such an address;
  spellings like ``2130706433`` or ``0x7f.1`` resolve to what they mean and are judged by it;
- the socket connects to a checked address itself (pinned), while ``Host`` and TLS (SNI and
  certificate verification) use the URL's host name, so a name that re-resolves to
  127.0.0.1 between the check and the connect (DNS rebinding) changes nothing;
- redirects are followed by hand (at most ``max_redirects``), each hop checked the same way;
  only ``http`` and ``https``.

``allow_private=True`` lifts the address check (a hook on the same host or in the same
network, on purpose); the scheme rules stay. Proxies from the environment are not used: a
proxy resolves names itself, so the check could not hold.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from ratchet.errors import OutboundRefused
from ratchet.redaction import redact_endpoint

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1024 * 1024
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")           # RFC 6052: v4 in the last 32 bits
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")   # RFC 8215: a site's own NAT64
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")         # deprecated ::a.b.c.d
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"),   # AWS, GCP, Azure, ...
                       ipaddress.ip_address("fd00:ec2::254")})    # AWS over IPv6
# In this order: loopback and link-local addresses are "private" too, and say more.
_KINDS = (("is_loopback", "a loopback"), ("is_unspecified", "an unspecified"),
          ("is_link_local", "a link-local"), ("is_multicast", "a multicast"),
          ("is_private", "a private"), ("is_site_local", "a site-local"),
          ("is_reserved", "a reserved"))
_LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)  # 2130706433, 0x7f.1, 0177.0.0.1
# Headers that carry the caller's credentials: not sent on to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    """Header names in lower case (repeated headers joined with ", ")."""
    body: bytes
    """At most ``max_response_bytes`` of the body."""
    url: str
    """The URL that answered (after redirects)."""
    redirects: tuple[str, ...] = field(default=())


def address_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address to connect to, as a phrase ("a loopback
    address"); ``None`` when it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            form, v4 = embedded
            reason = address_refusal(v4)
            if reason is not None:
                return f"the {form} form of {v4}, {reason}"
            if form in ("NAT64", "6to4", "IPv4-mapped"):
                return None  # a public IPv4 reached through a translator or tunnel
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address (private)"
    if ip in _METADATA:
        return "the cloud metadata service's address"
    for test, what in _KINDS:
        if getattr(ip, test, False):
            return f"{what} address"
    if not ip.is_global:
        return "a non-public address (shared, documentation or benchmarking range)"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is written as one, in any spelling the resolver
    takes (``127.0.0.1``, ``::1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``); else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str
    """For the resolver, ``Host`` and TLS: IDNA-encoded, IPv6 without brackets."""
    port: int
    path: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


def _target(url: str) -> _Target:
    shown = redact_endpoint(url)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise OutboundRefused(f"{shown}: not a valid URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise OutboundRefused(f"{shown}: only http:// and https:// URLs are fetched, not "
                              f"{scheme + ':' if scheme else 'a relative URL'}")
    if not host:
        raise OutboundRefused(f"{shown}: the URL has no host")
    if any(ord(c) < 33 for c in url):
        raise OutboundRefused(f"{shown}: the URL has spaces or control characters")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise OutboundRefused(f"{shown}: the host name is not valid ({e})") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(url, scheme, host, port or SCHEMES[scheme], path)


def _standard_spelling(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _check(ip: IPAddress, target: _Target, allow_private: bool) -> None:
    reason = None if allow_private else address_refusal(ip)
    if reason is None:
        return
    if literal_address(target.host) != ip:
        what = f"{target.host} resolves to {ip},"
    elif not _standard_spelling(target.host):
        what = f"{target.host} ({ip}) is"  # 2130706433 (127.0.0.1)
    else:
        what = f"{target.host} is"
    raise OutboundRefused(
        f"{redact_endpoint(target.url)}: {what} {reason}; outbound requests go to public "
        "addresses only (allow private targets explicitly to reach this one)")


def _resolve(target: _Target, allow_private: bool
             ) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
    """Every address of the target's host, each checked; one refused refuses them all (a
    name with a public and a private address could be connected to either)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise OutboundRefused(f"{redact_endpoint(target.url)}: cannot resolve "
                              f"{target.host} ({e})") from None
    addresses: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = []
    for family, _, _, _, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        _check(ip, target, allow_private)
        addresses.append((family, sockaddr))
    if not addresses:
        raise OutboundRefused(f"{redact_endpoint(target.url)}: {target.host} has no address")
    return addresses


def check_outbound(url: str, *, allow_private: bool = False, resolve: bool = True) -> None:
    """Raise ``OutboundRefused`` unless ``url`` is http(s) and its host's addresses are
    all public (or ``allow_private``). With ``resolve=False`` only an address written in
    the URL is judged (no DNS: for checking a setting up front; the connect-time check in
    ``request`` is the one that holds)."""
    target = _target(url)
    if resolve:
        _resolve(target, allow_private)
        return
    ip = literal_address(target.host)
    if ip is not None:
        _check(ip, target, allow_private)


def _connect(target: _Target, timeout: float, allow_private: bool) -> socket.socket:
    """A socket to one of the checked addresses: never resolved a second time."""
    error: OSError | None = None
    for family, sockaddr in _resolve(target, allow_private):
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            error = e
    assert error is not None
    raise error


def _seconds(timeout: Any) -> float:
    return float(timeout) if isinstance(timeout, int | float) else TIMEOUT_S


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: _Target, timeout: float, allow_private: bool) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._target, self._allow_private = target, allow_private

    def connect(self) -> None:
        self.sock = _connect(self._target, _seconds(self.timeout), self._allow_private)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: _Target, timeout: float, allow_private: bool,
                 context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._target, self._allow_private, self._tls = target, allow_private, context

    def connect(self) -> None:
        sock = _connect(self._target, _seconds(self.timeout), self._allow_private)
        try:  # SNI and certificate checked against the URL's host, not the address
            self.sock = self._tls.wrap_socket(sock, server_hostname=self._target.host)
        except BaseException:
            sock.close()
            raise


def _send(method: str, target: _Target, body: bytes | None, headers: dict[str, str],
          timeout: float, allow_private: bool, context: ssl.SSLContext | None,
          max_response_bytes: int) -> tuple[int, dict[str, str], bytes]:
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPS(target, timeout, allow_private,
                                  context or ssl.create_default_context())
    else:
        connection = _PinnedHTTP(target, timeout, allow_private)
    try:
        connection.request(method, target.path, body=body, headers=headers)
        answer = connection.getresponse()
        merged: dict[str, str] = {}
        for name, value in answer.getheaders():
            key = name.lower()
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return answer.status, merged, answer.read(max_response_bytes)
    finally:
        connection.close()


def request(method: str, url: str, *, body: bytes | None = None,
            headers: Mapping[str, str] | None = None, timeout: float = TIMEOUT_S,
            allow_private: bool = False, follow_redirects: bool = True,
            max_redirects: int = MAX_REDIRECTS, max_response_bytes: int = MAX_RESPONSE_BYTES,
            context: ssl.SSLContext | None = None) -> Response:
    """Send ``method url`` through the guard (see the module docstring) and return the
    answer, whatever its status. ``OutboundRefused`` for a refused target (any hop);
    ``OSError`` (``ssl.SSLError``, ``TimeoutError``, ...) when the connection fails.

    Redirects: 303, and 301/302 after a POST, continue as a GET without the body (what
    browsers do); 307/308 repeat the method and body. Credentials headers are dropped when
    a redirect leaves the origin. With ``follow_redirects=False`` a 3xx is returned."""
    method = method.upper()
    sent = {k: v for k, v in (headers or {}).items()}
    target = _target(url)
    hops: list[str] = []
    while True:
        try:
            status, answer_headers, data = _send(method, target, body, sent, timeout,
                                                 allow_private, context,
                                                 max_response_bytes)
        except OutboundRefused as e:
            if not hops:
                raise
            raise OutboundRefused(f"{redact_endpoint(url)} redirected to {e}") from None
        location = answer_headers.get("location")
        if not (follow_redirects and status in REDIRECTS and location):
            return Response(status, answer_headers, data, target.url, tuple(hops))
        if len(hops) >= max_redirects:
            raise OutboundRefused(f"{redact_endpoint(url)}: more than {max_redirects} "
                                  "redirects")
        try:
            following = _target(urljoin(target.url, location.strip()))
        except OutboundRefused as e:
            raise OutboundRefused(f"{redact_endpoint(url)} redirected to {e}") from None
        hops.append(following.url)
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, body = ("HEAD" if method == "HEAD" else "GET"), None
            sent = {k: v for k, v in sent.items()
                    if k.lower() not in ("content-type", "content-length")}
        if following.origin != target.origin:
            sent = {k: v for k, v in sent.items() if k.lower() not in _CREDENTIAL_HEADERS}
        target = following


__all__ = ["OutboundRefused", "Response", "address_refusal", "check_outbound",
           "literal_address", "request"]
