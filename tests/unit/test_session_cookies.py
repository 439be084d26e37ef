"""The flow cookies' names and attributes (`sharelock.web.session`): under https only the
`__Host-` name is read, so a cookie tossed in by a sibling subdomain or a plain-http origin
(which cannot set a `__Host-` cookie) is ignored."""

from __future__ import annotations

from fastapi import Response
from starlette.requests import Request

from sharelock.config import Settings
from sharelock.web.session import cookie_name, read_session, set_session

FLOW = "Q" * 32
SECRET = "s" * 43


def _request(cookie: str) -> Request:
    return Request({"type": "http", "headers": [(b"cookie", cookie.encode())]})


def _settings(issuer: str) -> Settings:
    return Settings(issuer=issuer)


def test_https_reads_only_the_host_prefixed_cookie() -> None:
    settings = _settings("https://broker.example")
    assert cookie_name(settings, FLOW) == f"__Host-sl_flow_{FLOW}"
    assert read_session(_request(f"sl_flow_{FLOW}={SECRET}"), settings, FLOW) is None
    assert read_session(_request(f"sl_session={SECRET}"), settings, FLOW) is None
    assert read_session(_request(f"__Host-sl_flow_{FLOW}={SECRET}"), settings, FLOW) == SECRET


def test_loopback_http_reads_the_plain_name_only_for_that_flow() -> None:
    settings = _settings("http://127.0.0.1:8000")
    assert read_session(_request(f"sl_flow_{FLOW}={SECRET}"), settings, FLOW) == SECRET
    assert read_session(_request(f"sl_flow_{FLOW}={SECRET}"), settings, "R" * 32) is None
    assert read_session(_request(f"sl_session={SECRET}"), settings, FLOW) is None


def test_values_of_the_wrong_length_and_odd_flow_ids_are_ignored() -> None:
    settings = _settings("http://127.0.0.1:8000")
    assert read_session(_request(f"sl_flow_{FLOW}=short"), settings, FLOW) is None
    assert read_session(_request(f"sl_flow_{FLOW}={'x' * 200}"), settings, FLOW) is None
    assert read_session(_request("sl_flow_a;b=x"), settings, "a;b") is None


def test_https_cookie_is_secure_host_only_and_lives_no_longer_than_the_flow() -> None:
    response = Response()
    set_session(response, _settings("https://broker.example"), FLOW, SECRET, max_age=1800)
    header = response.headers["set-cookie"]
    assert header.startswith(f"__Host-sl_flow_{FLOW}={SECRET};")
    lowered = header.lower()
    for attribute in ("secure", "httponly", "path=/", "samesite=lax", "max-age=1800"):
        assert attribute in lowered
    assert "domain=" not in lowered
