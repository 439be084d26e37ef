"""The embedded key layer answers and opens a JWE made by an independent library."""

from __future__ import annotations

import json
from typing import Any

from jwcrypto import jwe, jwk

from sharelock.envelope import open_envelope
from sharelock.keys import KeyLayer


def test_jwcrypto_envelope_opens(key_layer: KeyLayer, enc_jwk: dict[str, Any]) -> None:
    message = {"login": "alice", "password": "alice-pass"}
    token = jwe.JWE(
        json.dumps(message).encode(),
        protected={"alg": enc_jwk["alg"], "enc": "A256GCM", "kid": enc_jwk["kid"]},
    )
    token.add_recipient(jwk.JWK(**enc_jwk))
    with open_envelope(token.serialize(compact=True), key_layer) as opened:
        assert opened.json_object({"login": 64, "password": 64}) == message
    assert opened.wiped
