"""One whole share through the HTTP API, as a script: the partner's calls and the browser's,
with the credentials encrypted exactly as the consent page encrypts them."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sharelock.envelope import pick_encryption_key, seal_for


@dataclass(frozen=True)
class HeadlessResult:
    received: dict[str, Any]
    steps_ms: dict[str, float]


class ShareFailed(RuntimeError):
    pass


def _expect(response: httpx.Response, status: int, step: str) -> httpx.Response:
    if response.status_code != status:
        error = response.headers.get("content-type", "").startswith("application/json")
        detail = response.json().get("error") if error else response.status_code
        raise ShareFailed(f"{step}: expected HTTP {status}, got {response.status_code} ({detail})")
    return response


def run_share(
    broker_url: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    *,
    scope: str = "identity address bank_account",
    data_source: str = "sandbox-bank",
    login: str = "alice",
    password: str = "alice-pass",  # noqa: S107 - the sandbox's documented test user
    otp: str | None = None,
    omit: tuple[str, ...] = (),
) -> HeadlessResult:
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def mark(step: str) -> None:
        steps[step] = round((time.perf_counter() - started) * 1000, 1)

    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    state = secrets.token_urlsafe(16)
    with (
        httpx.Client(base_url=broker_url, timeout=30) as partner,
        httpx.Client(base_url=broker_url, timeout=60) as browser,
    ):
        pushed = _expect(
            partner.post(
                "/par",
                auth=(client_id, client_secret),
                data={
                    "response_type": "code",
                    "redirect_uri": redirect_uri,
                    "scope": scope,
                    "state": state,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            ),
            201,
            "PAR",
        ).json()
        mark("par")
        consent = _expect(
            browser.get(
                "/authorize", params={"client_id": client_id, "request_uri": pushed["request_uri"]}
            ),
            303,
            "authorize",
        ).headers["location"]
        flow_id = consent.rstrip("/").rsplit("/", 1)[-1]
        mark("authorize")
        _expect(browser.get(f"/api/flows/{flow_id}"), 200, "flow")
        jwk = pick_encryption_key(
            _expect(browser.get("/.well-known/jwks.json"), 200, "jwks").json()
        )
        envelope = seal_for(jwk, {"login": login, "password": password})
        status = _expect(
            browser.post(
                f"/api/flows/{flow_id}/credentials",
                json={"data_source": data_source, "credentials": envelope},
            ),
            200,
            "credentials",
        ).json()
        if status["status"] == "otp_required":
            if otp is None:
                raise ShareFailed("the data source asks for a one-time code")
            status = _expect(
                browser.post(
                    f"/api/flows/{flow_id}/otp", json={"otp": seal_for(jwk, {"otp": otp})}
                ),
                200,
                "otp",
            ).json()
        if status["status"] != "collected":
            raise ShareFailed(f"collection: {status.get('reason', status['status'])}")
        mark("collected")
        _expect(browser.get(f"/api/flows/{flow_id}/data"), 200, "review")
        decision = _expect(
            browser.post(
                f"/api/flows/{flow_id}/decision", json={"approve": True, "omit": list(omit)}
            ),
            200,
            "decision",
        ).json()
        # Continue, as the person does: the broker issues the code now and redirects.
        left = _expect(browser.get(decision["redirect_to"]), 303, "continue")
        callback = parse_qs(urlsplit(left.headers.get("location", "")).query)
        if callback.get("state") != [state] or callback.get("iss") != [broker_url]:
            raise ShareFailed("the callback's state or iss does not match")
        mark("approved")
        token = _expect(
            partner.post(
                "/token",
                auth=(client_id, client_secret),
                data={
                    "grant_type": "authorization_code",
                    "code": callback["code"][0],
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
            ),
            200,
            "token",
        ).json()
        mark("token")
        received = _expect(
            partner.get("/v1/share", headers={"Authorization": f"Bearer {token['access_token']}"}),
            200,
            "share",
        ).json()
        mark("delivered")
    return HeadlessResult(received, steps)
