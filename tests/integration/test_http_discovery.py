"""Discovery and operator endpoints over real HTTP (uvicorn on loopback, real SoftHSM token)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jwcrypto import jwk as jwcrypto_jwk

from sharelock.config import Settings
from sharelock.keys import KeyLayer
from sharelock.oauth import ASSERTION_ALGORITHMS
from sharelock.scopes import SCOPES
from tests.support.redis_server import RedisServer
from tests.support.server import LiveServer, serve_broker

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture(scope="module")
def broker(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("db") / "sharelock.db"
    served = settings.model_copy(
        update={"redis_url": redis_server.url, "database_url": f"sqlite:///{database}"}
    )
    with serve_broker(served, key_layer) as server:
        yield server


@pytest.fixture(scope="module")
def http(broker: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30.0, follow_redirects=False) as client:
        yield client


@pytest.fixture(scope="module")
def jwks(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    return body


def _enc(jwks: dict[str, Any]) -> list[dict[str, Any]]:
    """The encryption keys; the JWKS also holds the audit signing key (`use: sig`, EC)."""
    return [key for key in jwks["keys"] if key.get("use") != "sig"]


def _modulus_bits(jwk: dict[str, Any]) -> int:
    n = jwk["n"]
    return len(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))) * 8


def _softhsm_version(settings: Settings) -> str | None:
    """SoftHSM's version when the configured module is SoftHSM, else None."""
    if "softhsm" not in settings.pkcs11_module.name.lower():
        return None
    tool = shutil.which("softhsm2-util")
    assert tool, "softhsm2-util is missing although the module is SoftHSM"
    shown = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True)
    return shown.stdout.strip()


def test_jwks_publishes_rsa4096_encryption_keys(jwks: dict[str, Any]) -> None:
    keys = _enc(jwks)
    assert keys, "the JWKS publishes no key"
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["use"] == "enc"
        assert key["alg"] in {"RSA-OAEP", "RSA-OAEP-256"}
        assert _modulus_bits(key) == 4096
        assert not PRIVATE_JWK_MEMBERS & set(key), "the JWKS leaks private key members"


def test_jwks_alg_matches_the_hsm(
    jwks: dict[str, Any], settings: Settings, key_layer: KeyLayer
) -> None:
    algs = {key["alg"] for key in _enc(jwks)}
    version = _softhsm_version(settings)
    if version is not None and version.startswith("2.6."):
        # SoftHSM 2.6 only does OAEP with SHA-1 (MechParamCheckRSAPKCSOAEP): RSA-OAEP only.
        assert algs == {"RSA-OAEP"}
    else:
        assert algs == {key_layer.preferred_algorithm()}


def test_jwks_kid_is_the_rfc7638_thumbprint(jwks: dict[str, Any]) -> None:
    for key in _enc(jwks):
        bare = {"kty": key["kty"], "n": key["n"], "e": key["e"]}
        assert key["kid"] == jwcrypto_jwk.JWK(**bare).thumbprint()  # SHA-256 by default


def test_jwks_matches_the_key_layer(jwks: dict[str, Any], key_layer: KeyLayer) -> None:
    active = key_layer.active_key()
    assert jwks["keys"][0]["kid"] == active.kid, "the active key must come first"
    assert jwks == key_layer.published_jwks()
    assert _enc(jwks) == key_layer.jwks()["keys"]


def test_authorization_server_metadata(
    http: httpx.Client, broker: LiveServer, jwks: dict[str, Any], key_layer: KeyLayer
) -> None:
    response = http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    meta = response.json()
    issuer = broker.url
    assert meta["issuer"] == issuer
    assert meta["authorization_endpoint"] == f"{issuer}/authorize"
    assert meta["token_endpoint"] == f"{issuer}/token"
    assert meta["pushed_authorization_request_endpoint"] == f"{issuer}/par"
    # RFC 7009 at /revoke, authenticated as at /token.
    assert meta["revocation_endpoint"] == f"{issuer}/revoke"
    assert (
        meta["revocation_endpoint_auth_methods_supported"]
        == (meta["token_endpoint_auth_methods_supported"])
    )
    assert (
        meta["revocation_endpoint_auth_signing_alg_values_supported"]
        == (meta["token_endpoint_auth_signing_alg_values_supported"])
    )
    assert meta["require_pushed_authorization_requests"] is True
    # FAPI 2.0's algorithms for client assertions, and no other (no RS256).
    fapi = ["PS256", "ES256", "EdDSA", "Ed25519"]  # FAPI 2.0's, EdDSA also by RFC 9864's name
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == fapi
    assert meta["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert meta["scopes_supported"] == list(SCOPES)
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "private_key_jwt"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    assert meta["authorization_response_iss_parameter_supported"] is True
    # Every alg the token decrypts; the JWKS gives each key the preferred one, so on a token
    # with one OAEP variant (SoftHSM 2.6: RSA-OAEP) the two lists are the same.
    advertised = meta["credential_encryption_alg_values_supported"]
    assert advertised == list(key_layer.algorithms())
    assert {key["alg"] for key in _enc(jwks)} <= set(advertised)
    if len(advertised) == 1:
        assert {key["alg"] for key in _enc(jwks)} == set(advertised)
    assert meta["credential_encryption_enc_values_supported"] == ["A256GCM"]


def test_openid_configuration_is_the_same_document(http: httpx.Client) -> None:
    """openid-client (and other OIDC-first libraries) look here by default; the issue's
    partners got a 404. Same document, not a second one that could drift."""
    oauth = http.get("/.well-known/oauth-authorization-server")
    oidc = http.get("/.well-known/openid-configuration")
    assert oidc.status_code == 200
    assert oidc.headers["content-type"].startswith("application/json")
    assert oidc.json() == oauth.json()


def test_token_endpoint_auth_algorithms_are_the_verified_ones(http: httpx.Client) -> None:
    """What is announced is what client authentication verifies with (and RS256 is in
    neither: test_oauth_strictness refuses an RS256 assertion)."""
    meta = http.get("/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == list(ASSERTION_ALGORITHMS)
    assert "RS256" not in meta["token_endpoint_auth_signing_alg_values_supported"]


def test_every_advertised_endpoint_is_served(http: httpx.Client, broker: LiveServer) -> None:
    """An endpoint in the metadata answers (an error for a bare request, never a 404): no
    endpoint is announced before it exists."""
    meta = http.get("/.well-known/oauth-authorization-server").json()
    urls = {name: url for name, url in meta.items() if name.endswith(("_endpoint", "_uri"))}
    assert {"authorization_endpoint", "token_endpoint", "revocation_endpoint", "jwks_uri"} <= set(
        urls
    )
    for name, url in urls.items():
        assert url.startswith(broker.url + "/"), name
        for method in ("GET", "POST"):
            status = http.request(method, url).status_code
            assert status != 404, f"{name} is advertised but not served"


def test_metadata_announces_the_fapi_features_it_serves(http: httpx.Client) -> None:
    """Each member names a feature the endpoints serve (a certified client relies on it):
    DPoP (test_dpop_flow.py), JAR at PAR (test_request_objects.py), JARM (test_jarm.py)."""
    meta = http.get("/.well-known/oauth-authorization-server").json()
    assert meta["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA", "Ed25519"]
    assert meta["request_object_signing_alg_values_supported"] == [
        "PS256",
        "ES256",
        "EdDSA",
        "Ed25519",
    ]
    assert meta["require_signed_request_object"] is False  # per partner, not for all
    assert meta["response_modes_supported"] == ["query", "jwt", "query.jwt"]
    assert meta["authorization_signing_alg_values_supported"] == ["ES256"]
    assert "service_documentation" not in meta  # no documentation URL is configured


def test_metadata_jwks_uri_serves_the_jwks(http: httpx.Client, jwks: dict[str, Any]) -> None:
    jwks_uri = http.get("/.well-known/oauth-authorization-server").json()["jwks_uri"]
    assert httpx.get(jwks_uri, timeout=30.0).json() == jwks


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_hsm(http: httpx.Client) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["hsm"] == "ok"
    assert set(body["checks"].values()) == {"ok"}  # Redis and the database too
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/.well-known/oauth-authorization-server"),
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/no-such-page"),
        ("POST", "/.well-known/jwks.json"),
    ],
)
def test_security_headers(http: httpx.Client, method: str, path: str) -> None:
    headers = http.request(method, path).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    directives = [d.strip() for d in headers["content-security-policy"].split(";")]
    assert "frame-ancestors 'none'" in directives
    assert headers["x-frame-options"] == "DENY"


def test_unknown_path_is_a_json_404(http: httpx.Client) -> None:
    response = http.get("/no-such-page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "not_found"
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert "Traceback" not in response.text


def test_wrong_method_is_a_json_405(http: httpx.Client) -> None:
    response = http.post("/.well-known/jwks.json")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
