"""The one policy for URLs the server opens on a user's behalf (SSRF guard).

Everything that fetches or navigates to a URL a client supplied goes through
:class:`OutboundPolicy`: the knowledge base's add-from-URL, and the browser
runner (navigation, every sub-request, downloads). Three checks, each cheap:

1. :meth:`OutboundPolicy.check_url`: scheme http/https only, host on the allowlist.
2. :meth:`OutboundPolicy.check_resolved`: every address the host resolves to is
   public (or loopback/private when the settings allow it); link-local and cloud
   metadata addresses are refused always.
3. :meth:`OutboundPolicy.fetch`: redirects are followed by hand, so each hop is
   checked again, and the body is read with a size cap.

The resolved-address check and the connection resolve separately, so a DNS
answer that changes in between (rebinding) is not fully excluded; deployments
that need that guarantee put an egress proxy in front.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urljoin, urlsplit

import httpx

from .settings import OutboundSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = ("http", "https")
# Cloud instance-metadata endpoints: AWS/GCP/Azure, AWS over IPv6, Alibaba Cloud.
_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class UrlRefused(Exception):
    """A URL the policy does not let the server open; the message names the cause and the fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FetchedResponse:
    """The final answer of :meth:`OutboundPolicy.fetch`, its body read (at most ``max_bytes``)."""

    url: str
    status_code: int
    headers: httpx.Headers
    content: bytes
    redirects: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        charset = "utf-8"
        ctype = self.headers.get("content-type", "")
        if "charset=" in ctype:
            charset = ctype.split("charset=", 1)[1].split(";", 1)[0].strip() or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


def _host_of(url: str) -> tuple[str, str]:
    """(scheme, host) of ``url``, lower-cased; raises UrlRefused for what is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower().rstrip(".")
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise UrlRefused("url_invalid", f"'{url:.200}' is not a valid URL ({exc}); give an http(s) URL") from None
    if scheme not in _SCHEMES:
        shown = scheme or "(none)"
        raise UrlRefused(
            "url_scheme_refused",
            f"URL scheme '{shown}:' is refused; only http and https URLs may be opened (file:, data:, "
            "javascript:, chrome: and others never)",
        )
    if not host:
        raise UrlRefused("url_invalid", f"'{url:.200}' names no host; give a full URL such as https://app.example.com/")
    return scheme, host


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class OutboundPolicy:
    """Checks URLs and addresses against :class:`OutboundSettings`; fetches with every hop checked."""

    def __init__(self, settings: OutboundSettings) -> None:
        self.settings = settings
        self._exact = {h for h in settings.allowed_hosts if not h.startswith("*.")}
        self._patterns = [h for h in settings.allowed_hosts if h.startswith("*.")]

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".").strip("[]")
        if host in self._exact or f"[{host}]" in self._exact:
            return True
        ip = _literal_ip(host)
        if ip is not None and ip.is_loopback and self.settings.allow_loopback:
            return True
        if ip is None and host == "localhost" and self.settings.allow_loopback:
            return True
        # '*.example.com' matches sub-domains only, never the bare name (list it too if wanted).
        return ip is None and any(fnmatchcase(host, p) for p in self._patterns)

    def check_url(self, url: str) -> None:
        """Refuse a URL whose scheme is not http(s) or whose host is not allowed (no DNS lookup)."""
        _scheme, host = _host_of(url)
        ip = _literal_ip(host)
        if ip is not None:
            # An address that is never opened says so, rather than suggesting to allowlist it.
            self.check_ip(ip)
        if not self.host_allowed(host):
            raise UrlRefused(
                "url_host_not_allowed",
                f"host '{host}' is not on the outbound allowlist; add it to outbound.allowed_hosts "
                "(AITP_OUTBOUND__ALLOWED_HOSTS)"
                + (" or set outbound.allow_loopback" if host == "localhost" or _is_loopback(host) else ""),
            )

    def check_ip(self, ip: IPAddress | str) -> None:
        """Refuse an address the server must never connect to for a user."""
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address in _METADATA:
            raise UrlRefused(
                "url_address_refused",
                f"address {address} is a cloud metadata endpoint and is never opened",
            )
        if address.is_loopback:
            if not self.settings.allow_loopback:
                raise UrlRefused(
                    "url_address_refused",
                    f"address {address} is loopback; set outbound.allow_loopback to open local servers",
                )
            return
        if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
            raise UrlRefused(
                "url_address_refused",
                f"address {address} is link-local, multicast, unspecified or reserved and is never opened",
            )
        if (address.is_private or not address.is_global) and not self.settings.allow_private:
            raise UrlRefused(
                "url_address_refused",
                f"address {address} is on a private network; set outbound.allow_private to open it",
            )

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        literal = _literal_ip(host)
        if literal is not None:
            return [literal]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UrlRefused("url_unresolvable", f"host '{host}' does not resolve ({exc}); check the URL") from None
        return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]

    async def check_resolved(self, url: str) -> None:
        """check_url, then refuse the URL when any address its host resolves to is refused."""
        self.check_url(url)
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        for address in await self.resolve(host, port):
            self.check_ip(address)

    async def fetch(
        self, client: httpx.AsyncClient, url: str, *, max_bytes: int, max_redirects: int = 5
    ) -> FetchedResponse:
        """GET ``url`` following redirects by hand (each hop checked); refuse bodies over ``max_bytes``."""
        hops: list[str] = []
        current = url
        for _ in range(max_redirects + 1):
            await self.check_resolved(current)
            async with client.stream("GET", current, follow_redirects=False) as response:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    hops.append(current)
                    current = urljoin(current, response.headers["location"])
                    continue
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise UrlRefused(
                        "url_body_too_large",
                        f"{current:.200} answers {int(declared)} bytes, more than the {max_bytes} allowed",
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise UrlRefused(
                            "url_body_too_large", f"{current:.200} sent more than the {max_bytes} bytes allowed"
                        )
                return FetchedResponse(current, response.status_code, response.headers, bytes(body), tuple(hops))
        raise UrlRefused(
            "url_too_many_redirects", f"{url:.200} redirected more than {max_redirects} times; give the final URL"
        )


def _is_loopback(host: str) -> bool:
    ip = _literal_ip(host)
    return ip is not None and ip.is_loopback
