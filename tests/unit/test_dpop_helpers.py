"""The helpers the routes use around DPoP proofs: the RFC 7638 thumbprint (`jkt`), the `htu`
comparison form, the `WWW-Authenticate: DPoP` challenge, the single `DPoP` header, the error's
headers, and the stateless server nonces."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sharelock.oauth import (
    DPOP_ALGORITHMS,
    DPoPError,
    NonceIssuer,
    dpop_ath,
    dpop_challenge,
    jkt,
    one_dpop_proof,
)
from sharelock.oauth.dpop_uri import normalise_htu

EXAMPLES = json.loads((Path(__file__).parent / "data" / "dpop_rfc_examples.json").read_text())
NOW = 1_767_225_600
KEY = bytes(range(32))


class TestThumbprint:
    def test_rfc7638_example(self) -> None:
        example = EXAMPLES["rfc7638_thumbprint"]
        assert (
            jkt(example["jwk"]) == example["jkt"] == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        )

    def test_rfc9449_example_key(self) -> None:
        example = EXAMPLES["rfc9449_proof"]
        assert jkt(example["jwk"]) == example["jkt"]

    def test_only_required_members_count(self) -> None:
        jwk = dict(EXAMPLES["rfc9449_proof"]["jwk"])
        extended = dict(jwk, kid="k1", use="sig", alg="ES256")
        assert jkt(extended) == jkt(jwk)
        assert jkt(dict(jwk, x=jwk["y"], y=jwk["x"])) != jkt(jwk)

    @pytest.mark.parametrize(
        "jwk",
        [
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "x": "AA"},
            {"kty": "RSA", "n": 5, "e": "AQAB"},
            {"kty": "XYZ", "x": "AA"},
        ],
        ids=["private", "symmetric", "incomplete", "not-a-string", "unknown-kty"],
    )
    def test_refused_keys(self, jwk: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            jkt(jwk)

    def test_ath(self) -> None:
        # RFC 9449 §7.1's example access token and the ath of its example proof.
        token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
        assert dpop_ath(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


@pytest.mark.parametrize(
    ("url", "form"),
    [
        ("https://broker.example/token", "https://broker.example/token"),
        ("HTTPS://Broker.Example/token", "https://broker.example/token"),
        ("https://broker.example:443/token", "https://broker.example/token"),
        ("http://broker.example:80/token", "http://broker.example/token"),
        ("https://broker.example:8443/token", "https://broker.example:8443/token"),
        ("https://broker.example", "https://broker.example/"),
        ("https://broker.example/token?a=1#f", "https://broker.example/token"),
        ("https://broker.example/%74%6f%6Ben", "https://broker.example/token"),
        ("https://broker.example/a%2fb", "https://broker.example/a%2Fb"),
        ("https://broker.example/v1/./x/../share", "https://broker.example/v1/share"),
        ("https://[::1]:8000/token", "https://[::1]:8000/token"),
        ("https://broker.example/Token", "https://broker.example/Token"),
    ],
)
def test_htu_normal_form(url: str, form: str) -> None:
    assert normalise_htu(url) == form


@pytest.mark.parametrize(
    "url",
    [
        "/token",
        "broker.example/token",
        "ftp://broker.example/token",
        "https://user@broker.example/token",
        "https:///token",
        "https://broker.example:99999/token",
        "https://broker.example/to ken",
        "https://broker.example/to\nken",
        "https://broker.example/%zz",
        "https://broker.example/é",
    ],
)
def test_htu_refused(url: str) -> None:
    with pytest.raises(ValueError):
        normalise_htu(url)


class TestChallenge:
    def test_with_error(self) -> None:
        assert dpop_challenge("invalid_token", "the token is not bound to this key") == (
            'DPoP realm="sharelock", error="invalid_token", '
            'error_description="the token is not bound to this key", '
            'algs="ES256 PS256 EdDSA Ed25519"'
        )

    def test_without_credentials_names_no_error(self) -> None:
        assert dpop_challenge() == 'DPoP realm="sharelock", algs="ES256 PS256 EdDSA Ed25519"'

    def test_no_header_injection(self) -> None:
        value = dpop_challenge("invalid_token", 'a"b\\c\r\nSet-Cookie: x=1', realm=None)
        assert "\r" not in value and "\n" not in value and "\\" not in value
        assert value.count('"') == 6  # error, error_description, algs: quoted once each
        assert value.startswith('DPoP error="invalid_token", error_description="a?b?c??Set')

    def test_algorithms_are_fapi2s(self) -> None:
        # FAPI 2.0's three, EdDSA also under RFC 9864's name (oauth4webapi 3 signs with it).
        assert DPOP_ALGORITHMS == ("ES256", "PS256", "EdDSA", "Ed25519")


class TestErrorHeaders:
    def test_resource_gets_a_challenge(self) -> None:
        error = DPoPError("htu", "the DPoP proof is for another URL")
        assert error.response_headers(resource=True) == {
            "WWW-Authenticate": 'DPoP realm="sharelock", error="invalid_dpop_proof", '
            'error_description="the DPoP proof is for another URL", '
            'algs="ES256 PS256 EdDSA Ed25519"'
        }
        assert error.response_headers(resource=False) == {}
        assert (error.status, error.resource_status) == (400, 401)

    def test_nonce_error_carries_the_new_nonce(self) -> None:
        error = DPoPError("nonce", "a DPoP nonce is required", error="use_dpop_nonce", nonce="n1")
        headers = error.response_headers(resource=True)
        assert headers["DPoP-Nonce"] == "n1"
        assert 'error="use_dpop_nonce"' in headers["WWW-Authenticate"]


class TestOneProof:
    def test_none(self) -> None:
        assert one_dpop_proof([]) is None

    def test_one(self) -> None:
        assert one_dpop_proof(["a.b.c"]) == "a.b.c"

    def test_two_are_refused(self) -> None:
        with pytest.raises(DPoPError) as refused:
            one_dpop_proof(["a.b.c", "a.b.c"])
        assert (refused.value.error, refused.value.reason) == ("invalid_dpop_proof", "header_count")


class TestNonceIssuer:
    def test_nodes_with_the_same_key_agree(self) -> None:
        node_a, node_b = NonceIssuer(KEY), NonceIssuer(bytes(KEY))
        assert node_a.issue(NOW) == node_b.issue(NOW)
        assert node_b.is_valid(node_a.issue(NOW), NOW)

    def test_another_key_disagrees(self) -> None:
        assert not NonceIssuer(KEY).is_valid(NonceIssuer(bytes(32)).issue(NOW), NOW)

    def test_lifetime_is_one_to_two_windows(self) -> None:
        nonces = NonceIssuer(KEY, window_s=120)
        start = NOW - NOW % 120  # the first second of a window
        issued = nonces.issue(start)
        assert nonces.issue(start + 119) == issued
        assert nonces.issue(start + 120) != issued
        assert nonces.is_valid(issued, start + 239)  # previous window
        assert not nonces.is_valid(issued, start + 240)  # two windows on
        assert not nonces.is_valid(issued, start - 1)  # from the future

    def test_format(self) -> None:
        nonce = NonceIssuer(KEY).issue(NOW)
        # RFC 9449 §8.1: NQCHARs only; 256 bits of HMAC, base64url.
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce)

    @pytest.mark.parametrize("value", ["", "x", "é" * 43, "\x00"])
    def test_garbage_is_invalid(self, value: str) -> None:
        assert not NonceIssuer(KEY).is_valid(value, NOW)

    def test_key_too_short(self) -> None:
        with pytest.raises(ValueError) as refused:
            NonceIssuer(bytes(31))
        assert bytes(31).hex() not in str(refused.value)

    def test_impossible_time(self) -> None:
        with pytest.raises(ValueError):
            NonceIssuer(KEY).issue(float("nan"))
