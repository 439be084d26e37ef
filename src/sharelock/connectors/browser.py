"""A minimal, careful web browser for one collection attempt.

It wraps one `httpx.AsyncClient` whose cookie jar lives only as long as the attempt, so one
person's session at a portal can never be sent in another person's attempt. It follows
redirects itself, and only within the data source's own origin (scheme, host and port): a portal
that sends the connector anywhere else, where the session cookie or the next form post could
leak, is treated as unavailable. Pages are read up to a size limit and must be HTML; documents
(`download`) are read up to theirs, with the same client, cookies and timeouts.

The browser is light: it borrows the connection pool (`httpx.AsyncHTTPTransport`) of its data
source's connector, made once by `new_transport`, instead of building its own. A client built
without a transport loads the CA bundle into a fresh SSL context, which cost 36 to 70 ms of CPU
per collection. A pool holds no cookies (they live in the browser's jar), so sharing it between
people shares TCP (and TLS) connections, never sessions.

It sends its requests to that pool itself rather than through an `httpx.AsyncClient`: the
client's layers (URL and header merging, auth flow, event hooks, a redirect request built for
every 3xx even when redirects are not followed) cost about a third of a collection's CPU in the
broker's profile, and none of them is used here. What the client did that matters is done
here the same way: the jar (`httpx.Cookies`: the `Cookie` header from it before each request,
`Set-Cookie` into it after each answer), the per-operation timeouts (the request's `timeout`
extension, which the pool reads), and the same request headers.

Errors are raised as `PortalError` with fixed text; nothing the portal printed, and none of
the values sent, ever goes into an exception message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from types import TracebackType
from typing import Self

import httpx

from sharelock.connectors.html import Page, read_page
from sharelock.documents import PDF, DocumentTooLarge

MAX_REDIRECTS = 5
MAX_PAGE_BYTES = 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# An idle pooled connection is dropped after this many seconds: below the 5 s after which
# common servers (uvicorn, Apache) close an idle keep-alive connection themselves, so the
# pool does not send a login form down a connection the portal is closing at that moment.
KEEPALIVE_EXPIRY = 4.0
# What an `httpx.AsyncClient` sent (its defaults, with our agent and `Accept`); `Host` and, for
# a form, `Content-Type` and `Content-Length` are added by `httpx.Request`.
_HEADERS = (
    ("Accept", "text/html"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "keep-alive"),
    ("User-Agent", "Sharelock-connector/1"),
)
# A document is asked for as what it must be; what comes back is checked, not trusted.
_DOWNLOAD_HEADERS = (("Accept", PDF), *_HEADERS[1:])


class PortalError(Exception):
    """The portal answered something a connector cannot use (5xx, off-origin redirect, not
    HTML, too big). Maps to SOURCE_UNAVAILABLE. The message is fixed text."""


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    url: httpx.URL
    page: Page


@dataclass(frozen=True, slots=True, repr=False)
class Downloaded:
    """A file as the portal gave it: its bytes, declared type and name (unchecked)."""

    content: bytes
    content_type: str
    filename: str


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    url: httpx.URL
    headers: httpx.Headers
    encoding: str | None
    body: bytes


def origin(url: httpx.URL) -> tuple[str, str, int]:
    """Scheme, host and port, with the default port filled in, as browsers compare them."""
    return (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0))


def check_base_url(base_url: str) -> httpx.URL:
    """The data source's base URL, if it is an absolute http(s) URL; else `ValueError`."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        raise ValueError("the data source URL is not a URL") from None
    if url.scheme not in _DEFAULT_PORTS or not url.host or url.query or url.fragment:
        raise ValueError("the data source URL must be http(s) with a host")
    return url


def new_transport() -> httpx.AsyncHTTPTransport:
    """A connection pool for one data source, to be shared by all its collection attempts.

    This is where the SSL context (and its CA bundle) is made, once per data source rather
    than once per attempt. `trust_env=False`: no CA bundle named by the environment
    (`SSL_CERT_FILE`, `SSL_CERT_DIR`), as before; proxies from the environment are out anyway,
    since httpx reads them only for clients that are not given a transport."""
    return httpx.AsyncHTTPTransport(
        trust_env=False, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)
    )


class Browser:
    """One attempt's HTTP session against one origin. Use as an async context manager.

    `transport` is the data source's shared pool (see `new_transport`); it stays open when the
    browser closes. The cookie jar is the browser's own, empty unless `cookies` (a session to
    resume after a one-time code) are given."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport,
        cookies: list[tuple[str, str, str, str]] | None = None,
    ) -> None:
        self._base = check_base_url(base_url)
        self._transport = transport
        self._jar = httpx.Cookies()  # this attempt's jar, shared with nobody
        # What the pool reads from each request (connect, read, write, pool), as a client does.
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        for name, value, domain, path in cookies or ():
            self._jar.set(name, value, domain=domain, path=path)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._jar.clear()

    def url(self, path: str) -> httpx.URL:
        """A path of the data source, under the base URL (which may itself have a path)."""
        return self._base.copy_with(path=self._base.path.rstrip("/") + path)

    def resolve(self, reference: str, against: httpx.URL) -> httpx.URL:
        """Resolve a link or form action; refuse one that leaves the source's origin."""
        target = against.join(reference)
        if origin(target) != origin(self._base):
            raise PortalError("the data source pointed outside its own origin")
        return target.copy_with(fragment=None)

    def cookies(self) -> list[tuple[str, str, str, str]]:
        """The session cookies, to resume after a one-time code (name, value, domain, path)."""
        return [
            (cookie.name, cookie.value or "", cookie.domain, cookie.path)
            for cookie in self._jar.jar
        ]

    async def get(self, url: httpx.URL) -> Fetched:
        return await self._navigate("GET", url, None)

    async def post(self, url: httpx.URL, form: Mapping[str, str]) -> Fetched:
        return await self._navigate("POST", url, dict(form))

    async def download(self, url: httpx.URL, max_bytes: int) -> Downloaded:
        """A file (a document) at `url`, read up to `max_bytes`: beyond that, announced by
        `Content-Length` or found while reading, `DocumentTooLarge` (nothing more is read).
        An HTML page where the file should be (a login form: the session is gone) is the
        portal's failure, `PortalError`; any other type is for the document checks to judge."""
        answer = await self._fetch(
            "GET", url, None, _DOWNLOAD_HEADERS, max_bytes, too_big=DocumentTooLarge
        )
        if answer.status != 200:
            raise PortalError("the data source did not give the document")
        content_type = answer.headers.get("content-type", "")
        if content_type.lower().startswith("text/html"):
            raise PortalError("the data source answered a page instead of the document")
        disposition = Message()
        disposition["content-disposition"] = answer.headers.get("content-disposition", "")
        name = disposition.get_filename() or url.path.rsplit("/", 1)[-1]
        return Downloaded(answer.body, content_type, name)

    async def _navigate(self, method: str, url: httpx.URL, form: dict[str, str] | None) -> Fetched:
        answer = await self._fetch(method, url, form, _HEADERS, MAX_PAGE_BYTES, too_big=_PageTooBig)
        content_type = answer.headers.get("content-type", "")
        if not content_type.lower().startswith("text/html"):
            raise PortalError("the data source answered something that is not HTML")
        text = answer.body.decode(answer.encoding or "utf-8", errors="replace")
        return Fetched(answer.status, answer.url, read_page(text))

    async def _fetch(
        self,
        method: str,
        url: httpx.URL,
        form: dict[str, str] | None,
        headers: tuple[tuple[str, str], ...],
        limit: int,
        *,
        too_big: Callable[[], Exception],
    ) -> _Answer:
        """One request, its redirects followed within the origin, its body read up to
        `limit` (`too_big()` is raised past it)."""
        for _ in range(MAX_REDIRECTS + 1):
            if origin(url) != origin(self._base):
                raise PortalError("the data source pointed outside its own origin")
            request = httpx.Request(
                method, url, headers=headers, data=form, extensions=self._extensions
            )
            self._jar.set_cookie_header(request)
            response = await self._transport.handle_async_request(request)
            response.request = request
            try:
                self._jar.extract_cookies(response)
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise PortalError("redirect without a location")
                    url = self.resolve(location, url)
                    # Read (and drop) the body: a response closed unread closes its connection,
                    # and a login's redirect would then cost every collection a new one.
                    await _read_bounded(response, MAX_PAGE_BYTES, _PageTooBig)
                    if response.status_code not in (307, 308):
                        method, form = "GET", None
                    continue
                if response.status_code >= 500:
                    raise PortalError("the data source answered with a server error")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise too_big()
                body = await _read_bounded(response, limit, too_big)
            finally:
                await response.aclose()
            return _Answer(response.status_code, url, response.headers, response.encoding, body)
        raise PortalError("too many redirects")


class _PageTooBig(PortalError):
    def __init__(self) -> None:
        super().__init__("the data source answered a page that is too big")


async def _read_bounded(
    response: httpx.Response, limit: int, too_big: Callable[[], Exception]
) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise too_big()
    return bytes(body)
