"""The outbound URL guard: every non-public range refused (in every spelling), the check
made at connect time on the address actually connected to, redirects re-checked hop by
hop. Real HTTP(S) servers on loopback; where a test needs a "public" host, 127.0.0.2 plays
one (the policy is wrapped to call that one address public) so that a real socket can
still reach it."""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from ratchet import net_guard
from ratchet.errors import InvalidInput
from ratchet.net_guard import OutboundRefused, address_refusal, check_outbound, request

PUBLIC_STAND_IN = "127.0.0.2"


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    host: str
    port: int
    hits: list[Hit] = field(default_factory=list)

    def url(self, name: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{name or self.host}:{self.port}"


Answer = Callable[[Hit], tuple[int, dict[str, str], bytes]]


def _ok(hit: Hit) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"hello from " + hit.path.encode()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[HTTPServer] = []

    def start(answer: Answer = _ok, host: str = "127.0.0.1", port: int = 0,
              tls: ssl.SSLContext | None = None) -> Server:
        server = Server(host, 0)

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hit = Hit(self.command, self.path, {k.lower(): v for k, v in
                                                    self.headers.items()},
                          self.rfile.read(length))
                server.hits.append(hit)
                status, headers, body = answer(hit)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        httpd = HTTPServer((host, port), Handler)
        if tls is not None:
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        server.port = httpd.server_address[1]
        started.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return server

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def stand_in_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    real = net_guard.address_refusal

    def policy(ip: net_guard.IPAddress) -> str | None:
        return None if str(ip) == PUBLIC_STAND_IN else real(ip)

    monkeypatch.setattr(net_guard, "address_refusal", policy)


def _resolve_names(monkeypatch: pytest.MonkeyPatch,
                   names: dict[str, Callable[[], str]]) -> list[str]:
    """Names in ``names`` resolve to what their function returns (called per lookup);
    returns the log of names looked up."""
    real = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        if host in names:
            return real(names[host](), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(net_guard.socket, "getaddrinfo", getaddrinfo)
    return looked_up


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "::1",                          # loopback
    "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1",     # RFC 1918
    "fc00::1", "fd12:3456::1",                                      # unique local
    "169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254",   # link-local, metadata
    "0.0.0.0", "::", "0.1.2.3",                                     # unspecified, "this"
    "224.0.0.1", "239.255.255.250", "ff02::1",                      # multicast
    "240.0.0.1", "255.255.255.255",                                 # reserved, broadcast
    "100.64.0.1", "198.18.0.1", "192.0.2.1",                        # shared, bench, docs
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1",    # NAT64
    "2002:c0a8:101::1", "2002:7f00:1::",                            # 6to4 of private
    "::127.0.0.1", "fec0::1",                                       # v4-compatible, site-local
])
def test_every_non_public_range_is_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip) is not None
    with pytest.raises(OutboundRefused, match="public addresses only") as exc:
        check_outbound(f"http://[{address}]/x" if ":" in address else f"http://{address}/x")
    assert isinstance(exc.value, InvalidInput)
    check_outbound(f"http://[{address}]/" if ":" in address else f"http://{address}/",
                   allow_private=True)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None
    check_outbound(f"https://[{address}]/" if ":" in address else f"https://{address}/")


def test_the_reasons_are_named() -> None:
    def why(address: str) -> str | None:
        return address_refusal(ipaddress.ip_address(address))

    assert why("127.0.0.1") == "a loopback address"
    assert why("10.1.2.3") == "a private address"
    assert why("fe80::1") == "a link-local address"
    assert why("169.254.169.254") == "the cloud metadata service's address"
    assert why("::ffff:192.168.0.1") == "the IPv4-mapped form of 192.168.0.1, a private address"


@pytest.mark.parametrize("url", [
    "http://2130706433/", "http://0x7f.1/", "http://0x7f000001/", "http://0177.0.0.1/",
    "http://127.1/", "http://017700000001/", "http://[::1]:8080/", "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/", "http://localhost/", "http://LOCALHOST:9/",
    "https://169.254.169.254/latest/meta-data/", "http://0/",
])
def test_loopback_in_any_spelling_is_refused(url: str) -> None:
    with pytest.raises(OutboundRefused, match="public addresses only"):
        check_outbound(url)


def test_unusual_spellings_are_named_with_what_they_mean() -> None:
    with pytest.raises(OutboundRefused) as exc:
        check_outbound("http://2130706433/T000/s3cr3t")
    assert "2130706433 (127.0.0.1) is a loopback address" in str(exc.value)
    assert "s3cr3t" not in str(exc.value)  # the URL is shown redacted
    with pytest.raises(OutboundRefused) as exc:
        check_outbound("http://localhost:9/hook?token=s3cr3t")
    assert str(exc.value).startswith("http://localhost:9/***: localhost resolves to 127.0.0.1,")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x",
                                 "gopher://127.0.0.1:70/", "javascript:alert(1)", "/relative",
                                 "http:///nohost", "http://host:port/", "http://a b/"])
def test_only_absolute_http_urls(url: str) -> None:
    with pytest.raises(OutboundRefused):
        check_outbound(url, allow_private=True)


def test_without_resolving_only_written_addresses_are_judged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("resolved")

    monkeypatch.setattr(net_guard.socket, "getaddrinfo", no_dns)
    check_outbound("https://hooks.example/T0/B0", resolve=False)
    with pytest.raises(OutboundRefused, match="loopback"):
        check_outbound("http://0x7f.1/", resolve=False)


def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def two_addresses(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "mixed.test":
            return real("8.8.8.8", port, *args, **kwargs) + real("10.0.0.1", port, *args,
                                                                  **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(net_guard.socket, "getaddrinfo", two_addresses)
    with pytest.raises(OutboundRefused, match=re.escape("mixed.test resolves to 10.0.0.1, a private")):
        check_outbound("https://mixed.test/")


def test_a_loopback_server_is_refused_unless_allowed(serve: Callable[..., Server]) -> None:
    server = serve()
    with pytest.raises(OutboundRefused, match=re.escape("127.0.0.1 is a loopback address")):
        request("POST", f"{server.url()}/hook", body=b"{}")
    with pytest.raises(OutboundRefused, match=re.escape("localhost resolves to 127.0.0.1")):
        request("GET", f"{server.url('localhost')}/")
    assert server.hits == []  # nothing was sent
    answer = request("POST", f"{server.url()}/hook", body=b'{"a": 1}', allow_private=True,
                     headers={"Content-Type": "application/json"})
    assert (answer.status, answer.body) == (200, b"hello from /hook")
    assert server.hits[0].body == b'{"a": 1}'
    assert server.hits[0].headers["content-type"] == "application/json"


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(
        serve: Callable[..., Server], stand_in_is_public: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name first resolves to a public address, then to loopback. The
    socket must go where the check looked."""
    public = serve(host=PUBLIC_STAND_IN)
    internal = serve(host="127.0.0.1", port=public.port)  # same port, loopback
    answers = iter([PUBLIC_STAND_IN])
    looked_up = _resolve_names(monkeypatch,
                               {"rebind.test": lambda: next(answers, "127.0.0.1")})
    answer = request("GET", f"{public.url('rebind.test')}/data")
    assert answer.status == 200 and len(public.hits) == 1 and internal.hits == []
    assert public.hits[0].headers["host"] == f"rebind.test:{public.port}"  # the URL's name
    assert looked_up == ["rebind.test"]  # resolved once, then pinned
    with pytest.raises(OutboundRefused, match=re.escape("rebind.test resolves to 127.0.0.1")):
        request("GET", f"{public.url('rebind.test')}/data")  # the next lookup says loopback
    assert internal.hits == []


def test_a_redirect_to_loopback_is_refused(serve: Callable[..., Server],
                                           stand_in_is_public: None) -> None:
    internal = serve()
    hook = serve(lambda hit: (302, {"Location": f"{internal.url()}/admin/delete"}, b""),
                 host=PUBLIC_STAND_IN)
    with pytest.raises(OutboundRefused) as exc:
        request("POST", f"{hook.url()}/T000/s3cr3t", body=b"{}")
    message = str(exc.value)
    assert message.startswith(f"{hook.url()}/*** redirected to {internal.url()}/***: ")
    assert "127.0.0.1 is a loopback address" in message and "s3cr3t" not in message
    assert len(hook.hits) == 1 and internal.hits == []


@pytest.mark.parametrize("location", ["http://localhost:{port}/x", "http://2130706433:{port}/",
                                      "http://[::ffff:127.0.0.1]:{port}/",
                                      "file:///etc/passwd", "ftp://{host}:{port}/"])
def test_every_redirect_hop_is_checked(serve: Callable[..., Server], stand_in_is_public: None,
                                       location: str) -> None:
    internal = serve()
    hook = serve(lambda hit: (307, {"Location": location.format(host=internal.host,
                                                                  port=internal.port)}, b""),
                 host=PUBLIC_STAND_IN)
    with pytest.raises(OutboundRefused, match="redirected to"):
        request("GET", f"{hook.url()}/")
    assert internal.hits == []


def test_redirects_are_followed_and_rechecked(serve: Callable[..., Server],
                                              stand_in_is_public: None) -> None:
    final = serve(host=PUBLIC_STAND_IN)
    moved = serve(lambda hit: (302, {"Location": f"{final.url()}/final"}, b""),
                  host=PUBLIC_STAND_IN)
    kept = serve(lambda hit: (307, {"Location": "/again" if hit.path == "/first"
                                    else f"{final.url()}/kept"}, b""), host=PUBLIC_STAND_IN)
    answer = request("POST", f"{moved.url()}/start", body=b'{"x": 1}',
                     headers={"Content-Type": "application/json",
                              "Authorization": "Bearer s3cr3t"})
    assert answer.status == 200 and answer.url == f"{final.url()}/final"
    assert answer.redirects == (f"{final.url()}/final",)
    # 302 after a POST continues as a GET without the body; the token stays home
    assert (final.hits[0].method, final.hits[0].body) == ("GET", b"")
    assert "authorization" not in final.hits[0].headers
    assert moved.hits[0].headers["authorization"] == "Bearer s3cr3t"

    answer = request("POST", f"{kept.url()}/first", body=b"payload")
    assert answer.body == b"hello from /kept" and len(answer.redirects) == 2
    assert [(h.method, h.body) for h in kept.hits] == [("POST", b"payload")] * 2
    assert (final.hits[-1].method, final.hits[-1].body) == ("POST", b"payload")  # 307 keeps it


def test_redirects_are_limited(serve: Callable[..., Server], stand_in_is_public: None) -> None:
    loop = serve(lambda hit: (302, {"Location": f"/n{len(hit.path)}"}, b""),
                 host=PUBLIC_STAND_IN)
    with pytest.raises(OutboundRefused, match="more than 5 redirects"):
        request("GET", f"{loop.url()}/")
    assert len(loop.hits) == 6
    answer = request("GET", f"{loop.url()}/", follow_redirects=False)
    assert answer.status == 302 and answer.headers["location"] == "/n1"


def test_the_answer_is_read_up_to_the_limit(serve: Callable[..., Server]) -> None:
    big = serve(lambda hit: (200, {}, b"x" * 100_000))
    answer = request("GET", f"{big.url()}/", allow_private=True, max_response_bytes=1000)
    assert answer.body == b"x" * 1000


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_verifies_the_urls_name_while_connecting_to_the_pinned_address(
        serve: Callable[..., Server], stand_in_is_public: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _self_signed(tmp_path, "hooks.test")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    hooks = serve(host=PUBLIC_STAND_IN, tls=server_tls)
    _resolve_names(monkeypatch, {"hooks.test": lambda: PUBLIC_STAND_IN,
                                 "other.test": lambda: PUBLIC_STAND_IN})
    client_tls = ssl.create_default_context(cafile=str(cert))
    answer = request("GET", f"{hooks.url('hooks.test', 'https')}/tls", context=client_tls)
    assert answer.body == b"hello from /tls"
    assert hooks.hits[0].headers["host"] == f"hooks.test:{hooks.port}"
    # Another name for the same address does not match the certificate: verification
    # is against the URL's name, not skipped because we dialled an address.
    with pytest.raises(ssl.SSLCertVerificationError):
        request("GET", f"{hooks.url('other.test', 'https')}/", context=client_tls)
    with pytest.raises(ssl.SSLCertVerificationError):
        request("GET", f"{hooks.url(scheme='https')}/", context=client_tls)
