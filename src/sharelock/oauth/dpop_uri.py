"""The comparison form of a DPoP `htu` (RFC 9449 §4.3, check 9).

RFC 9449 compares `htu` with the request's URI "ignoring any query and fragment parts", after
the syntax- and scheme-based normalisation of RFC 3986 §6.2.2-6.2.3, so that a client that
writes `HTTPS://Broker.Example:443/token` is not refused for a proof that is really for
`https://broker.example/token`. Nothing beyond that: no trailing-slash or other guesswork,
which would let a proof for one resource count for another.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%(.{0,2})")
_HEX = re.compile(r"[0-9A-Fa-f]{2}")
# RFC 3986 §2.3: the characters that mean the same encoded or not.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def _percent(match: re.Match[str]) -> str:
    hex_digits = match.group(1)
    if not _HEX.fullmatch(hex_digits):
        raise ValueError("bad percent-encoding")
    char = chr(int(hex_digits, 16))
    return char if char in _UNRESERVED else f"%{hex_digits.upper()}"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    # A path ending in "." or ".." keeps its final slash, as the RFC's algorithm does.
    if path.rsplit("/", 1)[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)


def normalise_htu(url: str) -> str:
    """`scheme://host[:port]/path` of an absolute http(s) URL: scheme and host in lower case,
    default port dropped, percent-encoding normalised, dot segments removed, query and
    fragment dropped. ValueError for anything else (another scheme, userinfo, no host,
    spaces or control characters, which `urlsplit` would otherwise silently strip)."""
    if not _VISIBLE_ASCII.fullmatch(url):
        raise ValueError("not a visible-ASCII URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("not an http(s) URL")
    if "@" in parts.netloc:
        raise ValueError("userinfo in the URL")
    host = parts.hostname
    if not host:
        raise ValueError("no host")
    if ":" in host:  # an IPv6 literal, which urlsplit returns without its brackets
        host = f"[{host}]"
    port = parts.port  # ValueError for a port that is not a number in range
    authority = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _PERCENT.sub(_percent, parts.path) or "/"
    if not path.startswith("/"):
        raise ValueError("relative path")
    return f"{scheme}://{authority}{_remove_dot_segments(path)}"
