"""The sandbox people built for the checks, collected through the real connectors over real
HTTP, and every check run on what was collected: the values pass the connectors' validation as
the portals print them (a married name, capitals at the tax office, a birthdate computed to
stay 17), and the answers are the published ones."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import pytest

from sharelock.checks import Category, evaluate, parse_authorization_details
from sharelock.config import Settings
from sharelock.connectors import Connector, Outcome, build_connectors
from sharelock.sandbox.people import ALICE, CLAIRE, ELEONORE, LEA, THOMAS
from tests.support.sandbox import serve_sandbox

Ask = tuple[dict[str, Any], object]  # (request entry less its "type", expected result)

# source id, login, password -> the checks asked and their answers
PEOPLE: dict[tuple[str, str, str], list[Ask]] = {
    ("sandbox-bank", "eleonore", "eleonore-pass"): [
        ({"check": "name_match", "given_name": "Eleonore", "family_name": "de la Fontaine"},
         "match"),
        ({"check": "name_match", "given_name": "ELEONORE", "family_name": "Fontaine"}, "match"),
        ({"check": "iban_holder_match", "iban": ELEONORE.iban.lower()}, "match"),
        ({"check": "iban_holder_match", "iban": ALICE.iban}, "no_match"),  # a wrong IBAN
        ({"check": "age_over", "age": 18}, True),
        ({"check": "address_match", "street": "21 r. St-Jean", "postal_code": "69005",
          "city": "LYON"}, "match"),
        ({"check": "income_below", "threshold": 30000}, "check_not_possible"),
    ],
    ("sandbox-tax", "4567890123456", "eleonore-pass"): [
        ({"check": "name_match", "given_name": "Éléonore", "family_name": "de La Fontaine"},
         "match"),  # printed "DE LA FONTAINE"
        ({"check": "name_match", "given_name": "Eleonore", "family_name": "Delafontaine"},
         "close_match"),
        ({"check": "income_below", "threshold": 30000}, True),
        ({"check": "income_below", "threshold": 29850}, False),
        ({"check": "iban_holder_match", "iban": ELEONORE.iban}, "check_not_possible"),
    ],
    ("sandbox-bank", "claire", "claire-pass"): [
        ({"check": "name_match", "given_name": "Claire", "family_name": "Durand-Leroy"},
         "match"),
        ({"check": "name_match", "given_name": "Claire", "family_name": "Leroy"}, "close_match"),
        ({"check": "name_match", "given_name": "Claire", "family_name": "Durand"},
         "close_match"),
        ({"check": "name_match", "given_name": "Claire", "family_name": "Martin"}, "no_match"),
        ({"check": "iban_holder_match", "iban": CLAIRE.iban}, "match"),
    ],
    ("sandbox-bank", "lea", "lea-pass"): [
        ({"check": "age_over", "age": 18}, False),
        ({"check": "age_over", "age": 17}, True),
        ({"check": "name_match", "given_name": "Lea", "family_name": "Roux"}, "match"),
    ],
    ("sandbox-energy", "thomas", "thomas-pass"): [
        ({"check": "address_match", "street": "128 bis bd St-Germain", "postal_code": "75006",
          "city": "PARIS"}, "match"),
        ({"check": "address_match", "street": "128bis, Bd. Saint Germain",
          "postal_code": "75 006", "city": "Paris 6e"}, "match"),
        ({"check": "address_match", "street": "128 bd Saint-Germain", "postal_code": "75006",
          "city": "Paris"}, "close_match"),
        ({"check": "address_match", "street": "130 bd Saint-Germain", "postal_code": "75006",
          "city": "Paris"}, "no_match"),
        ({"check": "name_match", "given_name": "Thomas", "family_name": "Lefèvre"},
         "check_not_possible"),  # the energy supplier gives no identity
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_sandbox() as url:
        yield url


@pytest.fixture(scope="module")
async def connectors(sandbox_url: str) -> AsyncIterator[dict[str, Connector]]:
    built = build_connectors(Settings(connector_timeout=5.0), base_url=sandbox_url)
    yield built
    for connector in built.values():
        await connector.aclose()


async def _collect(
    connectors: dict[str, Connector], source_id: str, login: str, password: str
) -> dict[str, dict[str, str]]:
    connector = connectors[source_id]
    result = await connector.login(login, password, connector.info.scopes)
    assert result.outcome is Outcome.COLLECTED  # every value passed the connector's validation
    return result.data


@pytest.mark.parametrize(
    ("source_id", "login", "password"), list(PEOPLE), ids=[f"{s}-{u}" for s, u, _ in PEOPLE]
)
async def test_checks_on_collected_data(
    connectors: dict[str, Connector], source_id: str, login: str, password: str
) -> None:
    collected = await _collect(connectors, source_id, login, password)
    asked = PEOPLE[(source_id, login, password)]
    requests = parse_authorization_details(
        [{"type": "sharelock_check", **entry} for entry, _ in asked]
    )
    today = date.today()  # the sandbox computed Léa's birthdate from the same clock
    answers = [evaluate(request, collected, today).to_claims()["result"] for request in requests]
    assert answers == [expected for _, expected in asked]


async def test_the_portals_print_what_the_checks_are_built_on(
    connectors: dict[str, Connector],
) -> None:
    claire = await _collect(connectors, "sandbox-bank", "claire", "claire-pass")
    assert claire["identity"]["family_name"] == "Durand épouse Leroy"
    assert claire["bank_account"]["account_holder"] == "CLAIRE DURAND ÉPOUSE LEROY"
    tax = await _collect(connectors, "sandbox-tax", "4567890123456", "eleonore-pass")
    assert tax["identity"]["family_name"] == "DE LA FONTAINE"
    assert tax["identity"]["birthdate"] == "1988-02-29"
    lea = await _collect(connectors, "sandbox-bank", "lea", "lea-pass")
    assert lea["identity"]["birthdate"] == LEA.birthdate
    thomas = await _collect(connectors, "sandbox-energy", "thomas", "thomas-pass")
    assert thomas["address"]["street"] == THOMAS.street == "128 bis boulevard Saint-Germain"


async def test_close_match_reveals_the_name_as_the_bank_prints_it(
    connectors: dict[str, Connector],
) -> None:
    collected = await _collect(connectors, "sandbox-bank", "claire", "claire-pass")
    (request,) = parse_authorization_details(
        '[{"type": "sharelock_check", "check": "name_match", "id": "holder",'
        ' "given_name": "Claire", "family_name": "Leroy"}]'
    )
    result = evaluate(request, collected, date.today())
    assert result.answer is Category.CLOSE_MATCH
    assert "Durand" not in str(result.to_claims())
    assert result.to_claims(reveal_actual_name=True)["actual_name"] == {
        "given_name": "Claire",
        "family_name": "Durand épouse Leroy",
    }
