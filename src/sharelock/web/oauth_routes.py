"""The partner's endpoints: `POST /par`, `GET /authorize`, `POST /token`, `POST /revoke`,
`GET /v1/share` (and `POST /v1/share`, which only refuses)."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, NoReturn

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from sharelock.db import FAPI2_PROFILE
from sharelock.flow import authorization_redirect
from sharelock.oauth import (
    InvalidRequest,
    InvalidRequestObject,
    InvalidScope,
    InvalidToken,
    OAuthError,
    RedirectableError,
    UnsupportedGrantType,
    UnsupportedTokenType,
    UntrustedRedirect,
    authenticate_client,
    open_request_object,
    require_pushed,
    single_valued,
    validate_request,
)
from sharelock.web import dpop
from sharelock.web.access_log import RECEIVED_AT
from sharelock.web.deps import Broker, broker_of
from sharelock.web.errors import NO_STORE, error_page
from sharelock.web.forms import is_form, read_form, read_form_pairs
from sharelock.web.session import set_session

router = APIRouter()

_CLIENT_AUTH_PARAMS = ("client_assertion", "client_assertion_type", "client_id")


async def _client(broker: Broker, request: Request, form: dict[str, str]) -> Any:
    return await authenticate_client(
        request.headers.get("authorization"),
        form,
        broker.partners,
        issuer=broker.settings.issuer,
        remember_once=broker.remember_assertion,
        now=broker.clock.now(),
    )


@router.post("/par", status_code=201)
async def push_authorization_request(request: Request) -> JSONResponse:
    broker = broker_of(request)
    form = await read_form(request)
    partner = await _client(broker, request, form)
    await broker.limiter.hit("par_per_partner", partner.client_id)
    proof = await dpop.request_proof(broker, request, "POST", "/par")
    if "request_uri" in form:
        raise InvalidRequest("request_uri is not allowed in a pushed request")
    if "request" in form:
        # JAR (RFC 9101 §6.3): only the signed object's parameters count.
        params = open_request_object(
            form["request"], partner, broker.settings.issuer, broker.clock.now()
        )
    elif partner.signed_requests:
        raise InvalidRequestObject("this client must push a signed request object (request)")
    else:
        params = {k: v for k, v in form.items() if k not in _CLIENT_AUTH_PARAMS}
    params["client_id"] = partner.client_id
    try:
        auth_request = validate_request(params, partner)
    except UntrustedRedirect as exc:
        raise InvalidRequest(exc.description) from None
    except RedirectableError as exc:
        raise exc.cause from None
    if not broker.consent.providable(auth_request.collect_scopes):
        raise InvalidScope(NO_SOURCE)
    jkt = dpop.bound_key(proof, form.get("dpop_jkt"))
    body = await broker.delivery.push(replace(auth_request, dpop_jkt=jkt))
    return JSONResponse(body, status_code=201, headers={**NO_STORE, **dpop.nonce_headers(broker)})


NO_SOURCE = "no data source can provide every requested scope together; ask for fewer"


async def _error_redirect(
    broker: Broker, exc: RedirectableError, client_id: str
) -> RedirectResponse:
    location = await authorization_redirect(
        broker.keys,
        broker.clock,
        broker.settings.issuer,
        redirect_uri=exc.redirect_uri,
        client_id=client_id,
        state=exc.state,
        response_mode=exc.response_mode,
        error=exc.cause.error,
        error_description=exc.cause.description,
    )
    return RedirectResponse(location, status_code=303)


@router.get("/authorize", response_model=None)
async def authorize(request: Request) -> Response:
    broker = broker_of(request)
    try:
        params = single_valued(request.query_params.multi_items())
    except OAuthError as exc:
        return error_page(request, 400, exc.description)
    client_id = params.get("client_id", "")
    partner = await broker.partners.get(client_id) if client_id else None
    try:
        if "request_uri" in params:
            if partner is None:
                raise UntrustedRedirect("unknown client")
            auth_request = await broker.delivery.pull(params["request_uri"], partner.client_id)
            if auth_request is None:
                raise UntrustedRedirect("request_uri is invalid, expired or already used")
        else:
            require_pushed(partner)
            auth_request = validate_request(params, partner)
    except UntrustedRedirect as exc:
        return error_page(request, 400, exc.description)
    except RedirectableError as exc:
        return await _error_redirect(broker, exc, client_id)
    if not broker.consent.providable(auth_request.collect_scopes):
        return await _error_redirect(
            broker,
            RedirectableError(
                InvalidScope(NO_SOURCE),
                auth_request.redirect_uri,
                auth_request.state,
                auth_request.response_mode,
            ),
            auth_request.client_id,
        )
    started = await broker.consent.start(auth_request, request.headers.get("user-agent"))
    response = RedirectResponse(f"/consent/{started.flow_id}", status_code=303)
    # Rounded up: a cookie that dies before its flow would lock the person out of it.
    lifetime = math.ceil(started.expires_at - broker.clock.now())
    set_session(response, broker.settings, started.flow_id, started.session_secret, lifetime)
    return response


@router.post("/token")
async def token(request: Request) -> JSONResponse:
    # When the request arrived (the outermost middleware notes it, before anything waits):
    # tells a parallel duplicate from a replay.
    received_at = float(request.scope.get("state", {}).get(RECEIVED_AT, time.time()))
    broker = broker_of(request)
    form = await read_form(request)
    partner = await _client(broker, request, form)
    await broker.limiter.hit("token_per_partner", partner.client_id)
    if form.get("grant_type") != "authorization_code":
        raise UnsupportedGrantType("only authorization_code is supported")
    # Checked before the code is redeemed: a wrong proof does not burn the code.
    proof = await dpop.request_proof(broker, request, "POST", "/token")
    if partner.profile == FAPI2_PROFILE:
        dpop.require(proof, "a DPoP proof is required: tokens are DPoP-bound (FAPI 2.0)")
    body = await broker.delivery.exchange(
        partner.client_id, form, received_at, jkt=proof.jkt if proof else None
    )
    return JSONResponse(body, headers={**NO_STORE, **dpop.nonce_headers(broker)})


_TOKEN_TYPE_HINTS = ("access_token", "refresh_token", "authorization_code")


@router.post("/revoke")
async def revoke(request: Request) -> Response:
    """RFC 7009: the partner gives up a code or an access token (`token`, optional
    `token_type_hint`), authenticated as at `/token`. 200 with an empty body whether or not
    the value was live; 400 `invalid_grant` for another partner's."""
    broker = broker_of(request)
    form = await read_form(request)
    partner = await _client(broker, request, form)
    await broker.limiter.hit("token_per_partner", partner.client_id)
    token = form.get("token", "")
    if not token:
        raise InvalidRequest("token is required")
    hint = form.get("token_type_hint")
    if hint is not None and hint not in _TOKEN_TYPE_HINTS:
        raise UnsupportedTokenType("token_type_hint: access_token or authorization_code")
    await broker.delivery.revoke(partner.client_id, token, hint)
    return Response(status_code=200, headers=NO_STORE)


_HEADER_ONLY = (
    "access tokens are accepted in the Authorization header only; "
    "a token sent in a URL or a body is revoked"
)


async def _refuse_exposed(broker: Broker, tokens: list[str]) -> NoReturn:
    """Revoke every token sent where it leaks (RFC 6750 §2.2-2.3 are not supported), then
    refuse. The answer is the same whether a token was live or not."""
    for token in tokens:
        if token:
            await broker.delivery.revoke_exposed(token)
    raise InvalidRequest(_HEADER_ONLY)


@router.get("/v1/share", response_model=None)
async def share(request: Request) -> Response:
    broker = broker_of(request)
    if "access_token" in request.query_params:
        await _refuse_exposed(broker, request.query_params.getlist("access_token"))
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        raise InvalidToken("a bearer access token is required", credentials=False)
    scheme, _, token = header.partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme not in ("bearer", "dpop") or not token:
        raise InvalidToken("a Bearer or DPoP access token is required")
    proof = None
    if scheme == "dpop":
        proof = dpop.require(
            await dpop.request_proof(broker, request, "GET", "/v1/share", access_token=token),
            "a DPoP token needs a DPoP proof",
        )
    try:
        packed = await broker.delivery.deliver(token, jkt=proof.jkt if proof else None)
    except InvalidToken as exc:
        if scheme == "dpop":  # the challenge of the scheme the client used (RFC 9449 §7.1)
            exc.scheme = "DPoP"
        raise
    headers = {**NO_STORE, **dpop.nonce_headers(broker)}
    if isinstance(packed.body, str):  # a compact JWS or JWE
        return Response(packed.body, media_type=packed.media_type, headers=headers)
    return JSONResponse(packed.body, headers=headers)


@router.post("/v1/share")
async def share_by_post(request: Request) -> JSONResponse:
    """Exists only to refuse: a token in a form body (RFC 6750 §2.2) is revoked, as in a query
    string; the data is fetched with `GET` and the Authorization header."""
    broker = broker_of(request)
    tokens = request.query_params.getlist("access_token")
    if is_form(request):
        tokens += [
            value for name, value in await read_form_pairs(request) if name == "access_token"
        ]
    if tokens:
        await _refuse_exposed(broker, tokens)
    raise InvalidRequest("the shared data is fetched with GET and an Authorization header")
