"""The account's pure parts: the relying party from the issuer, the recovery code, the passkey
labels, and every message the account pages and their script ask for, in each language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sharelock.accounts import AccountError, RelyingParty
from sharelock.accounts.history import SHARE_EVENTS
from sharelock.accounts.recovery import code_hash, new_recovery_code, normalise_code
from sharelock.accounts.service import clean_label
from sharelock.db import ACCOUNT_SOURCE_STATUSES
from sharelock.web import i18n
from sharelock.web.account_page import DONE

WEB = Path(i18n.__file__).parent
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+(?:\.[A-Za-z_]+)+)["']""")
# Codes the script shows with the generic message (nothing the person can act on).
GENERIC = {"invalid_request", "forbidden", "server_error"}


@pytest.mark.parametrize(
    ("issuer", "rp_id", "origin"),
    [
        ("https://broker.example", "broker.example", "https://broker.example"),
        ("https://broker.example:443/sl", "broker.example", "https://broker.example"),
        ("https://Broker.Example:8443", "broker.example", "https://broker.example:8443"),
        ("http://localhost:8000", "localhost", "http://localhost:8000"),
    ],
)
def test_the_relying_party_is_the_issuer(issuer: str, rp_id: str, origin: str) -> None:
    party = RelyingParty.from_issuer(issuer, "Sharelock")
    assert party == RelyingParty(rp_id, origin, "Sharelock")


@pytest.mark.parametrize("issuer", ["http://127.0.0.1:8000", "https://[::1]:8443"])
def test_an_address_cannot_be_a_relying_party(issuer: str) -> None:
    assert RelyingParty.from_issuer(issuer, "Sharelock") is None


def test_recovery_codes_are_long_random_and_forgiving_to_type() -> None:
    codes = {new_recovery_code() for _ in range(50)}
    assert len(codes) == 50
    code = codes.pop()
    assert re.fullmatch(r"([A-Z2-7]{4}-){7}[A-Z2-7]{4}", code)  # 32 x 5 bits = 160 bits
    typed = code.lower().replace("-", " ").replace("O", "0").replace("I", "1")
    assert normalise_code(typed) == code.replace("-", "")
    assert code_hash(typed) == code_hash(code)
    assert code_hash(code) is not None and len(code_hash(code) or "") == 64
    for wrong in ("", "ABCD", code + "A", code[:-1] + "9", "x" * 200):
        assert code_hash(wrong) is None


def test_labels_are_one_short_line() -> None:
    assert clean_label("  My\n phone\t ", "Passkey") == "My phone"
    assert clean_label(None, "Passkey 2") == "Passkey 2"
    assert clean_label("\u200b", "Passkey") == "Passkey"
    assert len(clean_label("x" * 500, "Passkey")) == 60


def test_every_message_the_account_pages_ask_for_exists() -> None:
    sources = [
        WEB / "static" / "account.js",
        *sorted((WEB / "templates").glob("account*.html")),
    ]
    used = {key for path in sources for key in LITERAL_KEY.findall(path.read_text("utf-8"))}
    assert "account.sign_in" in used and "account.working" in used  # the pattern finds them
    # Keys built from what the server says.
    used |= {f"account.done.{done}" for done in DONE}
    used |= {f"account.sources.status.{status}" for status in ACCOUNT_SOURCE_STATUSES}
    used |= {f"rights.event.{event.value}" for event in SHARE_EVENTS}
    used |= {
        "account.error.cancelled",
        "account.error.unsupported",
        "account.error.passkey_refused",
    }
    errors = {cls.error for cls in _subclasses(AccountError)} - GENERIC
    for lang in i18n.SUPPORTED:
        catalogue = i18n.catalogue(lang)
        assert not used - set(catalogue), f"{lang}: {sorted(used - set(catalogue))}"
        shown = {
            code for code in errors if {f"account.error.{code}", f"error.{code}"} & set(catalogue)
        }
        assert shown == errors, f"{lang}: no message for {sorted(errors - shown)}"


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found
