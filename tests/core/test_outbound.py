"""The outbound URL policy: schemes, the host allowlist, refused addresses, and hop-by-hop redirects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from core.outbound import OutboundPolicy, UrlRefused
from core.settings import OutboundSettings


def policy(**kwargs: object) -> OutboundPolicy:
    return OutboundPolicy(OutboundSettings.model_validate(kwargs))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes = {
            "/ok": (200, {}, b"hello"),
            "/hop": (302, {"Location": "/ok"}, b""),
            "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
            "/to-other": (301, {"Location": "http://elsewhere.invalid/"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
            "/big": (200, {}, b"x" * 5000),
        }
        status, headers, body = routes.get(self.path, (404, {}, b"no"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if self.path != "/big":  # no length: the cap must hold while streaming
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "chrome://settings",
        "data:text/html,<b>x</b>",
        "javascript:alert(1)",
        "ftp://example.com/x",
        "about:blank",
        "/relative/path",
    ],
)
def test_only_http_schemes(url: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        policy(allowed_hosts=["example.com"]).check_url(url)
    assert caught.value.code in {"url_scheme_refused", "url_invalid"}
    assert "http" in caught.value.message


def test_allowlist_exact_and_patterns() -> None:
    p = policy(allowed_hosts=["app.example.com", "*.test.example"])
    p.check_url("https://app.example.com/login")
    p.check_url("https://APP.example.com./x")
    p.check_url("http://a.b.test.example/")
    for url in ("https://example.com/", "https://evil.com/?app.example.com", "https://test.example/"):
        with pytest.raises(UrlRefused) as caught:
            p.check_url(url)
        assert caught.value.code == "url_host_not_allowed"
        assert "outbound.allowed_hosts" in caught.value.message


def test_empty_allowlist_allows_nothing() -> None:
    with pytest.raises(UrlRefused, match="allowlist"):
        policy().check_url("https://example.com/")


def test_loopback_only_when_enabled() -> None:
    with pytest.raises(UrlRefused) as caught:
        policy().check_url("http://127.0.0.1:8080/")
    assert "allow_loopback" in caught.value.message
    open_loopback = policy(allow_loopback=True)
    open_loopback.check_url("http://127.0.0.1:8080/")
    open_loopback.check_url("http://localhost/")
    open_loopback.check_url("http://[::1]:9000/")
    with pytest.raises(UrlRefused):
        open_loopback.check_url("http://10.0.0.1/")


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("169.254.169.254", False),
        ("169.254.10.1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("100.100.100.200", False),
        ("::ffff:169.254.169.254", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.1.1", False),
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
    ],
)
def test_addresses(ip: str, allowed: bool) -> None:
    strict = policy()
    if allowed:
        strict.check_ip(ip)
    else:
        with pytest.raises(UrlRefused) as caught:
            strict.check_ip(ip)
        assert caught.value.code == "url_address_refused"


def test_metadata_refused_even_when_everything_is_allowed() -> None:
    lax = policy(allowed_hosts=["169.254.169.254"], allow_loopback=True, allow_private=True)
    lax.check_ip("10.0.0.1")
    lax.check_ip("127.0.0.1")
    with pytest.raises(UrlRefused, match="metadata"):
        lax.check_url("http://169.254.169.254/latest/meta-data/")


async def test_resolved_addresses_are_checked() -> None:
    # 'localhost' is on the allowlist by name, but it resolves to loopback, which is not enabled.
    with pytest.raises(UrlRefused) as caught:
        await policy(allowed_hosts=["localhost"]).check_resolved("http://localhost/")
    assert caught.value.code == "url_address_refused"
    await policy(allow_loopback=True).check_resolved("http://localhost/")


async def test_fetch_follows_allowed_redirects(origin: str) -> None:
    async with httpx.AsyncClient() as client:
        answer = await policy(allow_loopback=True).fetch(client, f"{origin}/hop", max_bytes=1000)
    assert answer.status_code == 200
    assert answer.text == "hello"
    assert answer.url == f"{origin}/ok"
    assert answer.redirects == (f"{origin}/hop",)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/to-metadata", "url_address_refused"),
        ("/to-file", "url_scheme_refused"),
        ("/to-other", "url_host_not_allowed"),
        ("/loop", "url_too_many_redirects"),
    ],
)
async def test_fetch_refuses_bad_hops(origin: str, path: str, code: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(UrlRefused) as caught:
            await policy(allow_loopback=True).fetch(client, f"{origin}{path}", max_bytes=1000, max_redirects=3)
    assert caught.value.code == code


async def test_fetch_metadata_hop_refused_even_if_listed(origin: str) -> None:
    lax = policy(allowed_hosts=["169.254.169.254"], allow_loopback=True)
    async with httpx.AsyncClient() as client:
        with pytest.raises(UrlRefused) as caught:
            await lax.fetch(client, f"{origin}/to-metadata", max_bytes=1000)
    assert caught.value.code == "url_address_refused"


async def test_fetch_caps_the_body(origin: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(UrlRefused) as caught:
            await policy(allow_loopback=True).fetch(client, f"{origin}/big", max_bytes=1000)
        assert caught.value.code == "url_body_too_large"
        small = await policy(allow_loopback=True).fetch(client, f"{origin}/big", max_bytes=5000)
    assert len(small.content) == 5000


def test_settings_reject_urls_as_hosts() -> None:
    with pytest.raises(ValueError, match="not a host"):
        OutboundSettings(allowed_hosts=["https://example.com/"])
    assert OutboundSettings(allowed_hosts=[" App.Example.com. "]).allowed_hosts == ["app.example.com"]
