"""Signed checkpoints and retention on the real parts: SoftHSM signs (ES256), SQLite and (when
configured) PostgreSQL hold the trail. Every kind of tampering is detected and named, purges
done by retention are not mistaken for tampering, and the signatures verify with an
independent JOSE library (jwcrypto)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws
from sqlalchemy import Engine, delete, func, select, text, update

from sharelock.audit import (
    AuditEvent,
    AuditTrail,
    AuditUnavailable,
    Checkpointer,
    EventType,
    TrailReport,
    verify_trail,
)
from sharelock.audit.chain import row_hash
from sharelock.audit.jws import b64url, b64url_decode
from sharelock.config import Retention
from sharelock.db import (
    AuditChainHead,
    AuditCheckpointRow,
    AuditEventRow,
)
from sharelock.keys import KeyLayer
from sharelock.retention import run_retention

ISSUER = "https://broker.example"


@pytest.fixture
def trail(engine: Engine) -> AuditTrail:
    return AuditTrail(engine)


@pytest.fixture
def checkpointer(engine: Engine, key_layer: KeyLayer) -> Checkpointer:
    return Checkpointer(engine, key_layer, ISSUER)


def _fill(trail: AuditTrail, count: int) -> list[int]:
    return [
        trail.record(
            AuditEvent(
                EventType.COLLECTION_SUCCEEDED,
                client_id="sl_client",
                data_source="sandbox-bank",
                login_hash="hmac-sha256:" + "ab" * 32,
                flow_ref=f"flow-{n}",
                outcome="ok",
            )
        )
        for n in range(count)
    ]


def _sql(engine: Engine, *statements: Any) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement) if isinstance(statement, str) else statement)


def _row(engine: Engine, row_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        found = connection.execute(
            select(AuditEventRow.__table__).where(AuditEventRow.id == row_id)
        )
        return dict(found.mappings().one())


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(AuditEventRow)) or 0)


def _verify(engine: Engine, key_layer: KeyLayer) -> TrailReport:
    return verify_trail(engine, key_layer.signing_jwk())


def _rechain(engine: Engine, from_id: int) -> None:
    """Recompute every hash from `from_id` on, and the head: what someone with write access
    to the database (but not to the HSM) can do to hide an edit from the chain."""
    with engine.begin() as connection:
        prev = connection.scalar(
            select(AuditEventRow.row_hash).where(AuditEventRow.id == from_id - 1)
        )
        rows = connection.execute(
            select(AuditEventRow.__table__)
            .where(AuditEventRow.id >= from_id)
            .order_by(AuditEventRow.id)
        ).mappings()
        for row in list(rows):
            digest = row_hash(row, prev)
            connection.execute(
                update(AuditEventRow)
                .where(AuditEventRow.id == row["id"])
                .values(prev_hash=prev, row_hash=digest)
            )
            last_id, prev = row["id"], digest
        connection.execute(update(AuditChainHead).values(last_id=last_id, last_hash=prev))


def _refuse_inserts(engine: Engine, table: str) -> None:
    """A trigger that makes the database refuse every insert into `table`."""
    if engine.dialect.name == "sqlite":
        _sql(
            engine,
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        return
    _sql(
        engine,
        "CREATE FUNCTION refuse_insert() RETURNS trigger AS "
        "$$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION refuse_insert()",
    )


# -- the signing key and the signature ------------------------------------------------------


def test_signing_key_is_in_the_hsm_and_published(key_layer: KeyLayer) -> None:
    label = key_layer.active_signing_key().label
    assert label.startswith("sharelock-sign-")  # a new token's first key is a dated one
    protection = key_layer.token.key_attributes(label, "private")
    assert protection["sensitive"] and not protection["extractable"]
    assert protection["never_extractable"]
    jwk = key_layer.signing_jwk()
    assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert "d" not in jwk
    assert jwk["kid"] == jwcrypto_jwk.JWK(**jwk).thumbprint()  # RFC 7638, SHA-256
    published = key_layer.published_jwks()["keys"]
    assert published[-1] == jwk
    assert published[:-1] == key_layer.jwks()["keys"]  # encryption keys first, unchanged
    assert "signing key" in key_layer.ensure_keys().existing  # idempotent
    assert key_layer.signature_keyring() == {jwk["kid"]: jwk}


def test_checkpoint_verifies_with_jwcrypto(
    trail: AuditTrail, checkpointer: Checkpointer, key_layer: KeyLayer, engine: Engine
) -> None:
    _fill(trail, 3)
    made = checkpointer.checkpoint()
    key = jwcrypto_jwk.JWK(**key_layer.signing_jwk())
    token = jwcrypto_jws.JWS()
    token.deserialize(made.jws)
    token.verify(key, alg="ES256")
    payload = json.loads(token.payload)
    assert payload["head"] == {"id": 3, "hash": _row(engine, 3)["row_hash"]}
    assert payload["anchor"] == {"id": 0, "hash": "0" * 64}
    assert (payload["iss"], payload["seq"], payload["prev"]) == (ISSUER, 1, "0" * 64)
    second = checkpointer.checkpoint()
    second_payload = json.loads(b64url_decode(second.jws.split(".")[1]))
    assert second_payload["prev"] == hashlib.sha256(made.jws.encode()).hexdigest()
    # A flipped signature byte does not verify.
    head, body, signature = made.jws.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[5] ^= 1
    forged = jwcrypto_jws.JWS()
    forged.deserialize(f"{head}.{body}.{b64url(bytes(raw))}")
    with pytest.raises(jwcrypto_jws.InvalidJWSSignature):
        forged.verify(key, alg="ES256")
    report = _verify(engine, key_layer)
    assert report.ok and report.checkpoints_checked == 2 and report.attested_through == 3


# -- tampering, with checkpoints ------------------------------------------------------------


def _problem(report: TrailReport) -> tuple[str, int | None, int | None, int | None]:
    assert not report.ok
    first = report.problems[0]
    return first.reason, first.first_id, first.last_id, first.checkpoint_id


@pytest.fixture
def signed_trail(trail: AuditTrail, checkpointer: Checkpointer, engine: Engine) -> Engine:
    """Rows 1-2, checkpoint 1, rows 3-5, checkpoint 2, row 6 (not yet signed)."""
    _fill(trail, 2)
    checkpointer.checkpoint()
    _fill(trail, 3)
    checkpointer.checkpoint()
    _fill(trail, 1)
    return engine


def test_untouched_signed_trail_verifies(signed_trail: Engine, key_layer: KeyLayer) -> None:
    report = _verify(signed_trail, key_layer)
    assert report.ok, report.problems
    assert (report.chain.rows_checked, report.checkpoints_checked) == (6, 2)
    assert report.attested_through == 5
    assert report.to_json()["problems"] == []


def test_rewritten_and_rechained_rows_are_caught_by_the_checkpoint(
    signed_trail: Engine, key_layer: KeyLayer
) -> None:
    _sql(signed_trail, update(AuditEventRow).where(AuditEventRow.id == 4).values(outcome="x"))
    assert _problem(_verify(signed_trail, key_layer))[:2] == ("altered", 4)  # the chain alone
    _rechain(signed_trail, 4)
    report = _verify(signed_trail, key_layer)
    assert report.chain.ok  # the chain is consistent again...
    assert _problem(report) == ("altered", 3, 5, 2)  # ...but checkpoint 2 saw other rows
    assert "rows 3 to 5" in report.problems[0].message


def test_truncated_tail_with_rewound_head_is_caught(
    signed_trail: Engine, key_layer: KeyLayer
) -> None:
    third = _row(signed_trail, 3)
    _sql(
        signed_trail,
        delete(AuditEventRow).where(AuditEventRow.id > 3),
        update(AuditChainHead).values(last_id=3, last_hash=third["row_hash"]),
    )
    report = _verify(signed_trail, key_layer)
    assert report.chain.ok
    assert _problem(report) == ("deleted", 4, 5, 2)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("DELETE FROM audit_events WHERE id = 3", ("deleted", 3)),
        ("UPDATE audit_events SET data_source = 'sandbox-tax' WHERE id = 6", ("altered", 6)),
        (
            [
                "UPDATE audit_events SET id = 100 WHERE id = 2",
                "UPDATE audit_events SET id = 2 WHERE id = 3",
                "UPDATE audit_events SET id = 3 WHERE id = 100",
            ],
            ("reordered", 2),
        ),
    ],
    ids=["deleted", "altered", "reordered"],
)
def test_row_tampering_is_named(
    signed_trail: Engine, key_layer: KeyLayer, tamper: Any, expected: tuple[str, int]
) -> None:
    _sql(signed_trail, *([tamper] if isinstance(tamper, str) else tamper))
    assert _problem(_verify(signed_trail, key_layer))[:2] == expected


def test_inserted_row_is_named(signed_trail: Engine, key_layer: KeyLayer) -> None:
    sixth = _row(signed_trail, 6)
    fields = {**sixth, "id": 7, "outcome": "forged", "flow_ref": "forged"}
    fields["row_hash"] = row_hash(fields, sixth["row_hash"])
    fields["prev_hash"] = sixth["row_hash"]
    _sql(signed_trail, AuditEventRow.__table__.insert().values(**fields))
    assert _problem(_verify(signed_trail, key_layer))[:2] == ("inserted", 7)


def test_forged_or_removed_checkpoints_are_caught(
    signed_trail: Engine, key_layer: KeyLayer
) -> None:
    with signed_trail.connect() as connection:
        first = connection.scalar(select(AuditCheckpointRow.jws).where(AuditCheckpointRow.id == 1))
    assert first is not None
    head, body, signature = first.split(".")
    claims = json.loads(b64url_decode(body))
    claims["head"]["id"] = 1  # claim a shorter chain, keep the signature
    forged = f"{head}.{b64url(json.dumps(claims).encode())}.{signature}"
    _sql(
        signed_trail,
        update(AuditCheckpointRow).where(AuditCheckpointRow.id == 1).values(jws=forged),
    )
    assert _problem(_verify(signed_trail, key_layer))[0] == "bad_signature"
    _sql(
        signed_trail,
        update(AuditCheckpointRow).where(AuditCheckpointRow.id == 1).values(jws=first),
        delete(AuditCheckpointRow).where(AuditCheckpointRow.id == 1),
    )
    report = _verify(signed_trail, key_layer)
    assert _problem(report)[0] == "checkpoint_altered" and report.problems[0].checkpoint_id == 2


def test_mirrored_columns_must_match_the_signed_payload(
    signed_trail: Engine, key_layer: KeyLayer
) -> None:
    _sql(
        signed_trail, update(AuditCheckpointRow).where(AuditCheckpointRow.id == 2).values(last_id=9)
    )
    assert _problem(_verify(signed_trail, key_layer))[0] == "checkpoint_altered"


def test_checkpoints_need_the_signing_key(signed_trail: Engine) -> None:
    report = verify_trail(signed_trail, None)
    assert _problem(report)[0] == "bad_signature"


# -- retention ------------------------------------------------------------------------------


def test_unsigned_purge_is_tampering(
    trail: AuditTrail, engine: Engine, key_layer: KeyLayer
) -> None:
    """Old rows removed and the anchor moved to hide it, without a signed checkpoint."""
    _fill(trail, 4)
    assert trail.purge(_row(engine, 3)["at"]) == 2
    report = _verify(engine, key_layer)
    assert report.chain.ok
    assert _problem(report) == ("deleted", 1, 2, None)
    # A checkpoint signed afterwards does not launder it: it records no purge of rows 1-2.
    Checkpointer(engine, key_layer, ISSUER).checkpoint()
    assert _problem(_verify(engine, key_layer)) == ("deleted", 1, 2, 1)


def test_retention_run_with_a_short_limit(
    trail: AuditTrail, engine: Engine, key_layer: KeyLayer
) -> None:
    retention = Retention(audit_trace=timedelta(seconds=1))
    _fill(trail, 3)
    time.sleep(1.2)
    _fill(trail, 2)
    report = run_retention(engine, key_layer, retention=retention, issuer=ISSUER)
    assert (report.audit_rows_purged, report.purged_from_id, report.purged_through_id) == (3, 1, 3)
    assert _count(engine) == 2  # the rows are really gone
    with engine.connect() as connection:
        ids = connection.scalars(select(AuditEventRow.id).order_by(AuditEventRow.id)).all()
    assert ids == [4, 5]
    payload = json.loads(b64url_decode(report.checkpoint.jws.split(".")[1]))
    assert payload["purged"] == {"from_id": 1, "through_id": 3, "rows": 3}
    assert payload["anchor"]["id"] == 3 and payload["reason"] == "retention"
    verified = _verify(engine, key_layer)
    assert verified.ok, verified.problems
    assert verified.chain.rows_checked == 2 and verified.anchor_id == 3

    again = run_retention(engine, key_layer, retention=retention, issuer=ISSUER)
    assert again.audit_rows_purged == 0 and again.purged_from_id is None  # idempotent
    assert _count(engine) == 2
    assert _verify(engine, key_layer).ok

    time.sleep(1.2)
    _fill(trail, 1)
    third = run_retention(engine, key_layer, retention=retention, issuer=ISSUER)
    assert (third.purged_from_id, third.purged_through_id) == (4, 5)
    assert _verify(engine, key_layer).ok
    limits = {limit["name"]: limit for limit in third.limits}
    assert set(limits) == set(Retention.model_fields)
    assert limits["audit_trace"]["limit_seconds"] == 1

    _sql(engine, "DELETE FROM audit_events WHERE id = 6")  # and tampering is still caught
    assert not _verify(engine, key_layer).ok


def test_purge_and_checkpoint_are_one_transaction(
    trail: AuditTrail, engine: Engine, key_layer: KeyLayer
) -> None:
    """If the checkpoint cannot be written, nothing is purged (and likewise if the HSM cannot
    sign: the signature is made inside the same transaction)."""
    _fill(trail, 3)
    _refuse_inserts(engine, "audit_checkpoints")
    with pytest.raises(AuditUnavailable):
        run_retention(
            engine,
            key_layer,
            retention=Retention(audit_trace=timedelta(seconds=1)),
            issuer=ISSUER,
            now=datetime.now(UTC) + timedelta(hours=1),
        )
    assert _count(engine) == 3
    with engine.connect() as connection:
        assert connection.scalar(select(AuditChainHead.anchor_id)) == 0
    assert _verify(engine, key_layer).ok


def test_checkpoints_while_processes_write(
    database_url: str, engine: Engine, checkpointer: Checkpointer, key_layer: KeyLayer
) -> None:
    """3 processes x 20 appends while this one signs checkpoints: one chain, and every
    checkpoint matches it."""
    script = (
        "import sys\n"
        "from sharelock.audit import AuditEvent, AuditTrail\n"
        "from sharelock.db import create_engine_for\n"
        "trail = AuditTrail(create_engine_for(sys.argv[1]))\n"
        "for i in range(20):\n"
        "    trail.record(AuditEvent('flow_started', flow_ref=f'w{sys.argv[2]}-{i}'))\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, database_url, str(n)]) for n in range(3)
    ]
    made = 0
    while any(w.poll() is None for w in workers) or made < 3:
        checkpointer.checkpoint()
        made += 1
        time.sleep(0.05)
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0]
    checkpointer.checkpoint()
    report = _verify(engine, key_layer)
    assert report.ok, report.problems
    assert report.chain.rows_checked == 60 and report.attested_through == 60
    assert report.checkpoints_checked == made + 1


class _NextSigningKey:
    """The broker's next signing key after a rotation, in software for this test: the
    keyring logic is what is under test; the token's own rotation is tested in
    test_cli_keys.py."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        numbers = self._key.public_key().public_numbers()
        bare = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        self._jwk = {**bare, "kid": jwcrypto_jwk.JWK(**bare).thumbprint(), "alg": "ES256"}

    def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def signing_jwk(self) -> dict[str, Any]:
        return dict(self._jwk)


def test_checkpoints_of_every_signing_key_verify_with_the_keyring(
    trail: AuditTrail, key_layer: KeyLayer, engine: Engine
) -> None:
    """Checkpoints signed before and after a rotation: the keyring (every key the token
    holds) verifies both; the key of one period alone flags the other's."""
    _fill(trail, 2)
    Checkpointer(engine, key_layer, ISSUER).checkpoint()
    _fill(trail, 2)
    rotated = _NextSigningKey()
    Checkpointer(engine, rotated, ISSUER).checkpoint()
    keyring = {**key_layer.signature_keyring(), rotated.signing_jwk()["kid"]: rotated.signing_jwk()}
    report = verify_trail(engine, keyring)
    assert report.ok and report.checkpoints_checked == 2 and report.attested_through == 4
    only_old = verify_trail(engine, key_layer.signing_jwk())
    assert [(p.reason, p.checkpoint_id) for p in only_old.problems] == [("bad_signature", 2)]
