"""One push of a SET to a partner's endpoint (RFC 8935), and what its answer means.

`POST` the SET with `Content-Type: application/secevent+jwt` and `Accept: application/json`
to the URL registered for the partner, and nowhere else: redirects are not followed (an
answer 3xx is a failure, retried; the operator sees it as `redirect`), and the client takes no
proxy or CA settings from the environment. Any 2xx is success (RFC 8935 says 202). A 400 with
a JSON `{"err": …}` is the receiver refusing this SET for good (RFC 8935 §2.3): retrying would
not help, so it goes to the dead letters at once. Anything else (a timeout, a refused
connection, a 5xx, another 4xx) is retried.

What an outcome keeps is a short code (`timeout`, `http_503`, `rejected_invalid_key`, …),
never the receiver's text: it goes into the queue, the logs and the operator's listing.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

MEDIA_TYPE = "application/secevent+jwt"
# RFC 8935 §2.4 and the IANA "Security Event Token Error Codes" registry.
ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_key",
        "invalid_issuer",
        "invalid_audience",
        "authentication_failed",
        "access_denied",
    }
)


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    permanent: bool = False
    reason: str | None = None
    status: int | None = None


DELIVERED = Outcome(delivered=True)


def _retry(reason: str, status: int | None = None) -> Outcome:
    return Outcome(delivered=False, reason=reason, status=status)


def _refusal(response: httpx.Response) -> Outcome | None:
    """The permanent refusal a 400 states, if it states one."""
    try:
        body = response.json()
    except ValueError:
        return None
    err = body.get("err") if isinstance(body, dict) else None
    if not isinstance(err, str):
        return None
    code = f"rejected_{err}" if err in ERROR_CODES else "rejected"
    return Outcome(delivered=False, permanent=True, reason=code, status=400)


def new_client(timeout: float) -> httpx.AsyncClient:
    """The senders' HTTP client: a timeout on every phase, no redirects, nothing from the
    environment (proxies, CA bundles)."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)


async def push(client: httpx.AsyncClient, url: str, token: str) -> Outcome:
    headers = {"Content-Type": MEDIA_TYPE, "Accept": "application/json"}
    try:
        response = await client.post(url, content=token.encode("ascii"), headers=headers)
    except httpx.TimeoutException:
        return _retry("timeout")
    except httpx.HTTPError:
        return _retry("unreachable")
    status = response.status_code
    if 200 <= status < 300:
        return DELIVERED
    if 300 <= status < 400:
        return _retry("redirect", status)
    if status == 400:
        refused = _refusal(response)
        if refused is not None:
            return refused
    return _retry(f"http_{status}", status)
