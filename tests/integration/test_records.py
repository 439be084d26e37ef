"""`sharelock records` as an operator runs it: the record for the configuration in use, with
one entry per registered partner and its GDPR role; without partners it is `docs/privacy.md`
byte for byte. And the consent receipt, signed by the HSM, checked with jwcrypto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from sharelock.audit.jws import BadSignature, b64url
from sharelock.audit.receipts import issue_receipt, read_receipt
from sharelock.keys import KeyLayer

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *args: str, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {"SHARELOCK_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200", **extra}
    done = subprocess.run(
        [str(SHARELOCK), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_records_without_partners_is_docs_privacy(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "privacy.md").read_text(encoding="utf-8")
    assert _run(tmp_path, "records", "--markdown", "--no-partners") == doc
    changed = _run(tmp_path, "records", "--no-partners", SHARELOCK_RETENTION__AUDIT_TRACE="P30D")
    assert changed != doc and "| 30 days |" in changed


def test_records_per_partner_with_roles(tmp_path: Path) -> None:
    for name, role, scopes in (
        ("Banque Partenaire", "processor", "identity,bank_account"),
        ("Assurance Commune", "joint", "address"),
    ):
        _run(
            tmp_path,
            "partners",
            "add",
            "--name",
            name,
            "--redirect-uri",
            "https://partner.example/cb",
            "--scope",
            scopes,
            "--purpose",
            f"{name} onboarding",
            "--role",
            role,
            "--profile",
            "basic",
        )
    record = json.loads(_run(tmp_path, "records", "--json"))
    partners = {p["name"].split(" (")[0]: p for p in record["partners"]}
    bank = partners["Sharing with Banque Partenaire"]
    assert bank["role"].startswith("partner: processor; Sharelock: controller")
    assert bank["purpose"] == "Banque Partenaire onboarding"
    assert [c["name"] for c in bank["categories"]] == ["identity", "bank_account"]
    assert bank["categories"][1]["fields"] == ["account_holder", "iban", "bic"]
    assert bank["recipients"] == ["Banque Partenaire"]
    joint = partners["Sharing with Assurance Commune"]
    assert "joint controller" in joint["role"] and joint["categories"][0]["name"] == "address"
    assert record["retention_seconds"]["audit_trace"] == 396 * 86400
    markdown = _run(tmp_path, "records")
    assert "## Per partner" in markdown and "### Sharing with Assurance Commune" in markdown


def test_consent_receipt_verifies_with_jwcrypto(key_layer: KeyLayer) -> None:
    """A receipt signed in the HSM, checked with an independent JOSE library and the JWKS."""
    receipt = issue_receipt(
        key_layer,
        issuer="https://broker.example",
        client_id="sl_partner",
        partner_name="Banque Partenaire",
        purpose="account opening",
        data_source="sandbox-bank",
        shared={"identity": ["family_name", "given_name"], "bank_account": ["iban"]},
        flow_ref="flow-ref-1",
    )
    published = {"keys": key_layer.published_jwks()["keys"]}
    keyset = jwcrypto_jwk.JWKSet.from_json(json.dumps(published))
    token = jwcrypto_jws.JWS()
    token.deserialize(receipt)
    token.verify(keyset.get_key(key_layer.signing_jwk()["kid"]), alg="ES256")
    claims = json.loads(token.payload)
    assert token.jose_header["typ"] == "sharelock-consent-receipt"
    assert claims["consent"]["partner"] == {"client_id": "sl_partner", "name": "Banque Partenaire"}
    assert claims["consent"]["shared"]["bank_account"] == ["iban"]
    assert read_receipt(receipt, key_layer.signing_jwk()) == claims
    head, _body, signature = receipt.split(".")
    claims["consent"]["shared"]["bank_account"] = ["iban", "bic"]
    tampered = ".".join((head, b64url(json.dumps(claims).encode()), signature))
    with pytest.raises(BadSignature):
        read_receipt(tampered, key_layer.signing_jwk())
    forged = jwcrypto_jws.JWS()
    forged.deserialize(tampered)
    with pytest.raises(jwcrypto_jws.InvalidJWSSignature):
        forged.verify(keyset.get_key(key_layer.signing_jwk()["kid"]), alg="ES256")
