"""The cluster run's load: people and one partner completing whole shares through HAProxy, and
behaving as a careful partner does when a node, Redis or the database fails under them.

What a share does on a failure (a 5xx, a refused or reset connection):
- `/token` and `/v1/share` are retried with the same code or token until the share's deadline:
  that is what a partner's back end does, and what the at-most-once guarantees must survive;
- any other step starts the share again from PAR (a new flow; the abandoned one expires and
  gets its `data_expired` row), as a person who reloads the partner's page does;
- a 4xx at `/token` or `/v1/share` ends the share: the partner was told clearly.

Each share's result says whether it delivered (payload checked), failed cleanly (every answer
was a clear error) or hung (one request outlived the client's timeout, longer than every
timeout the broker configures).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx

from sharelock.envelope.sealing import pick_encryption_key, seal_for
from tests.support.broker import pkce_pair
from tests.support.whole_share import (
    CREDENTIALS,
    DATA_SOURCE,
    REDIRECT_URI,
    SCOPE,
    Partner,
    check_payload,
)

# Longer than any timeout the broker sets on its own work (data source 10 s, Redis 2 s, the
# database's), so that a request still unanswered then is a hang, not a slow answer.
REQUEST_TIMEOUT_S = 25.0
SHARE_DEADLINE_S = 40.0
RETRY_PAUSE_S = 0.25

Outcome = Literal["delivered", "failed", "hung"]
RETRYABLE = {500, 502, 503, 504}


@dataclass
class ShareResult:
    started: float  # seconds since the run's start
    ended: float = 0.0
    outcome: Outcome = "failed"
    step: str = ""  # where it ended, if not delivered
    reason: str = ""
    restarts: int = 0
    retries: int = 0
    flow_ids: list[str] = field(default_factory=list)
    delivered_flow: str | None = None
    token: str | None = None  # kept to search the logs for it


class Retry(Exception):
    """A failure after which the share starts again from PAR."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class Final(Exception):
    """A clear refusal: the share ends, not delivered."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class Hung(Exception):
    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class _NoCookies(http.cookiejar.CookieJar):
    def __init__(self) -> None:
        super().__init__(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def _why(response: httpx.Response) -> str:
    reason = f"HTTP {response.status_code}"
    with contextlib.suppress(ValueError, AttributeError):
        reason += f" {response.json().get('error')}"
    return reason


class Load:
    """Shares through `url` (HAProxy), verifying TLS against `ca_file`."""

    def __init__(
        self, url: str, ca_file: str, partner: Partner, clock: Callable[[], float]
    ) -> None:
        self.url = url
        self.partner = partner
        self.clock = clock
        self.tls = httpx.create_ssl_context(verify=ca_file)
        self.timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self.backend = httpx.AsyncClient(
            base_url=url, verify=self.tls, timeout=self.timeout, limits=limits
        )
        self.jwk: dict[str, Any] | None = None
        self.results: list[ShareResult] = []

    async def close(self) -> None:
        await self.backend.aclose()

    async def _send(self, step: str, request: Any) -> httpx.Response:
        try:
            response: httpx.Response = await request
        except httpx.TimeoutException:
            raise Hung(step) from None
        except httpx.TransportError as exc:
            raise Retry(step, type(exc).__name__) from None
        return response

    async def closed_loop(self, people: int, until: float) -> None:
        async def person() -> None:
            while self.clock() < until:
                await self.share()

        await asyncio.gather(*(person() for _ in range(people)))

    async def share(self) -> ShareResult:
        result = ShareResult(started=self.clock())
        self.results.append(result)
        deadline = result.started + SHARE_DEADLINE_S
        try:
            while True:
                try:
                    await self._attempt(result, deadline)
                    result.outcome = "delivered"
                    break
                except Retry as retry:
                    result.step, result.reason = retry.step, retry.reason
                    if self.clock() >= deadline:
                        break
                    result.restarts += 1
                    await asyncio.sleep(RETRY_PAUSE_S)
        except Final as final:
            result.step, result.reason = final.step, final.reason
        except Hung as hung:
            result.outcome, result.step, result.reason = "hung", hung.step, "no answer"
        result.ended = self.clock()
        return result

    async def _attempt(self, result: ShareResult, deadline: float) -> None:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(12)
        auth = {"Authorization": self.partner.basic}
        pushed = await self._send(
            "par",
            self.backend.post(
                "/par",
                headers=auth,
                data={
                    "response_type": "code",
                    "redirect_uri": REDIRECT_URI,
                    "scope": SCOPE,
                    "state": state,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            ),
        )
        self._expect(pushed, 201, "par")
        async with httpx.AsyncClient(
            base_url=self.url,
            verify=self.tls,
            timeout=self.timeout,
            cookies=_NoCookies(),
            limits=httpx.Limits(max_connections=1),
        ) as web:
            code = await self._person(web, pushed.json()["request_uri"], state, result)
        token = await self._exchange(code, verifier, deadline, result)
        result.token = token
        await self._fetch(token, deadline, result)

    def _expect(self, response: httpx.Response, status: int, step: str) -> None:
        if response.status_code != status:
            raise Retry(step, _why(response))

    async def _person(
        self, web: httpx.AsyncClient, request_uri: str, state: str, result: ShareResult
    ) -> str:
        authorized = await self._send(
            "authorize",
            web.get(
                "/authorize",
                params={"client_id": self.partner.client_id, "request_uri": request_uri},
            ),
        )
        self._expect(authorized, 303, "authorize")
        location = authorized.headers.get("location", "")
        flow_id = location.rsplit("/", 1)[-1]
        result.flow_ids.append(flow_id)
        name = f"sl_flow_{flow_id}="
        cookie = next(
            (
                c.split(";", 1)[0]
                for c in authorized.headers.get_list("set-cookie")
                if c.split("=", 1)[0].endswith(name.rstrip("="))
            ),
            None,
        )
        if cookie is None:
            raise Final("authorize", "no flow cookie")
        browser = {"Cookie": cookie}
        self._expect(
            await self._send("consent", web.get(location, headers=browser)), 200, "consent"
        )
        jwks = await self._send("jwks", web.get("/.well-known/jwks.json"))
        self._expect(jwks, 200, "jwks")
        envelope = seal_for(dict(pick_encryption_key(jwks.json())), CREDENTIALS)
        flow = f"/api/flows/{flow_id}"
        collected = await self._send(
            "credentials",
            web.post(
                f"{flow}/credentials",
                headers=browser,
                json={"data_source": DATA_SOURCE, "credentials": envelope},
            ),
        )
        self._expect(collected, 200, "credentials")
        if collected.json().get("status") != "collected":
            raise Retry("credentials", f"status {collected.json().get('status')}")
        review = await self._send("data", web.get(f"{flow}/data", headers=browser))
        self._expect(review, 200, "data")
        decided = await self._send(
            "decision",
            web.post(f"{flow}/decision", headers=browser, json={"approve": True, "omit": []}),
        )
        self._expect(decided, 200, "decision")
        # Continue: the broker issues the code as the person leaves for the partner.
        left = await self._send("continue", web.get(decided.json()["redirect_to"], headers=browser))
        self._expect(left, 303, "continue")
        callback = parse_qs(urlsplit(left.headers.get("location", "")).query)
        if callback.get("state") != [state]:
            raise Final("decision", "wrong state in the callback")
        return str(callback["code"][0])

    async def _exchange(
        self, code: str, verifier: str, deadline: float, result: ShareResult
    ) -> str:
        while True:
            response = await self._send_partner(
                "token",
                lambda: self.backend.post(
                    "/token",
                    headers={"Authorization": self.partner.basic},
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": REDIRECT_URI,
                        "code_verifier": verifier,
                    },
                ),
            )
            if response is not None and response.status_code == 200:
                return str(response.json()["access_token"])
            if response is not None and response.status_code not in RETRYABLE:
                # The code is spent (or expired): the partner starts again.
                raise Retry("token", _why(response))
            if self.clock() >= deadline:
                raise Retry("token", "deadline")
            result.retries += 1
            await asyncio.sleep(RETRY_PAUSE_S)

    async def _fetch(self, token: str, deadline: float, result: ShareResult) -> None:
        while True:
            response = await self._send_partner(
                "share",
                lambda: self.backend.get("/v1/share", headers={"Authorization": f"Bearer {token}"}),
            )
            if response is not None and response.status_code == 200:
                problem = check_payload(response.json(), self.partner.client_id)
                if problem:
                    raise Final("share", f"wrong payload ({problem})")
                result.delivered_flow = result.flow_ids[-1]
                return
            if response is not None and response.status_code not in RETRYABLE:
                raise Final("share", _why(response))
            if self.clock() >= deadline:
                raise Final("share", "deadline")
            result.retries += 1
            await asyncio.sleep(RETRY_PAUSE_S)

    async def _send_partner(self, step: str, request: Callable[[], Any]) -> httpx.Response | None:
        """One try of a partner call; None for a transport failure (retried like a 503)."""
        try:
            return await self._send(step, request())
        except Retry:
            return None


async def wait_until_served(load: Load, timeout: float) -> float:
    """Seconds until one whole share succeeds (after a restart of everything)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        result = await load.share()
        if result.outcome == "delivered":
            return time.monotonic() - began
    raise RuntimeError("no share succeeded")
