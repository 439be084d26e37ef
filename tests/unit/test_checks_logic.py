"""The checks' normalisation, age arithmetic, answers for the partner, consent-screen wording,
and the rule that an answer never carries a value from the source."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from sharelock.checks import (
    MESSAGES,
    Category,
    CheckRequest,
    age_on,
    describe_answer,
    describe_question,
    evaluate,
    parse_authorization_details,
    render,
)
from sharelock.checks import normalise as norm
from sharelock.checks.compare import Relation, allowed_edits, relate
from sharelock.sandbox.people import birthdate_aged_17

DOC = Path(__file__).resolve().parents[2] / "docs" / "checks.md"


def _one(check: str, **members: object) -> CheckRequest:
    return parse_authorization_details([{"type": "sharelock_check", "check": check, **members}])[0]


# -- normalisation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Éléonore", ["eleonore"]),
        ("Jean-Pierre  D'ARC", ["jean", "pierre", "d", "arc"]),
        ("Œdipe Lætitia STRAUß", ["oedipe", "laetitia", "strauss"]),
        ("St.\u00a0Ç/ø—Ł", ["st", "c", "o", "l"]),
        ("l’Hôpital", ["l", "hopital"]),  # a typographic apostrophe
        ("", []),
    ],
)
def test_words_fold_case_accents_and_punctuation(text: str, expected: list[str]) -> None:
    assert norm.words(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("de La Fontaine", ("fontaine",)),
        ("VAN DER BERG", ("berg",)),
        ("Durand épouse Leroy", ("durand", "leroy")),
        ("Leroy née Durand", ("leroy", "durand")),
        ("Durand ép. Leroy", ("durand", "leroy")),
        ("Le", ("le",)),  # only a particle: kept, there is nothing else to compare
    ],
)
def test_family_names_drop_particles_and_markers(text: str, expected: tuple[str, ...]) -> None:
    assert norm.family_name(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("128 bis Bd St-Germain", ("128 bis", ("boulevard", "saint", "germain"))),
        ("128B boulevard Saint Germain", ("128 bis", ("boulevard", "saint", "germain"))),
        ("07 r. de l'Église", ("7", ("rue", "eglise"))),
        ("3 av. du Gal Leclerc", ("3", ("avenue", "general", "leclerc"))),
        ("2 imp. des Lilas", ("2", ("impasse", "lilas"))),
        ("9 rte de Lyon", ("9", ("route", "lyon"))),
        ("1 sq. Ste-Anne", ("1", ("square", "sainte", "anne"))),
        ("4 crs Mirabeau", ("4", ("cours", "mirabeau"))),
        ("12 rue du Quatre-Septembre", ("12", ("rue", "4", "septembre"))),
        ("place du Vingt-et-Un-Août", ("", ("place", "21", "aout"))),
        ("rue du 1er Mai", ("", ("rue", "1", "mai"))),
        ("allée Quatre-Vingt-Dix", ("", ("allee", "90"))),
        ("rue Pierre et Marie Curie", ("", ("rue", "pierre", "et", "marie", "curie"))),
    ],
)
def test_streets(text: str, expected: tuple[str, tuple[str, ...]]) -> None:
    assert norm.street(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PARIS CEDEX 07", ("paris",)),
        ("Paris 6e", ("paris",)),
        ("Lyon 2e arrondissement", ("lyon",)),
        ("St-Étienne", ("saint", "etienne")),
        ("La Rochelle", ("rochelle",)),
    ],
)
def test_cities(text: str, expected: tuple[str, ...]) -> None:
    assert norm.city(text) == expected


def test_postal_codes_keep_digits_only() -> None:
    assert norm.postal_code("75 006") == norm.postal_code("F-75006") == "75006"


def test_relations_and_edit_budget() -> None:
    assert [allowed_edits(n) for n in (3, 4, 8, 9, 20)] == [0, 1, 1, 2, 2]
    assert relate(("alice",), ("alice",)) is Relation.EQUAL
    assert relate(("marie",), ("marie", "claire")) is Relation.CLOSE
    assert relate(("leroy", "durand"), ("durand", "leroy")) is Relation.CLOSE
    assert relate(("martni",), ("martin",)) is Relation.SPELLING  # two letters swapped: 1 edit
    assert relate(("martinez",), ("martin",)) is Relation.DIFFERENT  # two edits, 8 letters
    assert relate((), ("martin",)) is Relation.DIFFERENT


# -- ages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(2008, 6, 15), date(2026, 6, 14), 17),
        (date(2008, 6, 15), date(2026, 6, 15), 18),  # the birthday itself
        (date(2008, 2, 29), date(2026, 2, 28), 17),  # common year: not yet
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        (date(2008, 2, 29), date(2028, 2, 28), 19),
        (date(2008, 2, 29), date(2028, 2, 29), 20),  # leap year: on the day
        (date(2000, 12, 31), date(2001, 1, 1), 0),
    ],
)
def test_age_on(born: date, today: date, age: int) -> None:
    assert age_on(born, today) == age


def test_the_sandbox_17_year_old_stays_17_for_six_months() -> None:
    start = date(2027, 1, 1)
    for offset in range(0, 3 * 366):  # three years of days the sandbox may start, 2028-02-29 too
        today = start + timedelta(days=offset)
        born = date.fromisoformat(birthdate_aged_17(today))
        assert age_on(born, today) == 17, today
        assert age_on(born, today + timedelta(days=180)) == 17, today
        assert age_on(born, today + timedelta(days=190)) == 18, today


def test_an_unreadable_or_future_birthdate_cannot_be_checked() -> None:
    request = _one("age_over", age=18)
    for birthdate in ("14/03/1985", "1990-02-31", "2030-01-01"):
        result = evaluate(request, {"identity": {"birthdate": birthdate}}, date(2026, 1, 1))
        assert result.answer is Category.CHECK_NOT_POSSIBLE, birthdate


def test_an_unreadable_income_cannot_be_checked() -> None:
    request = _one("income_below", threshold=30000)
    printed = {"tax_notice": {"reference_income": "29\u202f850\u00a0€"}}
    assert evaluate(request, printed, date(2026, 1, 1)).answer is True  # as a portal prints it
    garbled = {"tax_notice": {"reference_income": "-1200"}}
    assert evaluate(request, garbled, date(2026, 1, 1)).answer is Category.CHECK_NOT_POSSIBLE


# -- answers for the partner -------------------------------------------------------------------

TODAY = date(2026, 6, 1)
HELD = {
    "identity": {
        "given_name": "Zéphyrine",
        "family_name": "Quintavalle épouse Brugnatelli",
        "gender": "female",
        "birthdate": "1987-04-23",
        "birthplace": "Pontarlier",
    },
    "address": {
        "street": "77 bis rue Planchamp",
        "postal_code": "25300",
        "city": "Pontarlier",
        "country": "FR",
    },
    "bank_account": {
        "account_holder": "ZEPHYRINE QUINTAVALLE",
        "iban": "FR7699990005100008888999949",
        "bic": "SBOXFRPPREI",
    },
    "tax_notice": {
        "tax_year": "2025",
        "reference_income": "31337",
        "household_shares": "1.5",
        "notice_reference": "2651A00000007",
    },
}
# Every source value, as held and as the normalisation may turn it.
SECRETS = (
    "Zéphyrine", "Zephyrine", "zephyrine", "Quintavalle", "quintavalle", "Brugnatelli",
    "brugnatelli", "1987", "04-23", "Pontarlier", "Planchamp", "planchamp", "25300", "31337",
    "FR7699990005100008888999949", "8888999949",
)  # fmt: skip
ASKED = [
    ("name_match", {"given_name": "Zephyrine", "family_name": "Quintavalle-Brugnatelli"}),
    ("name_match", {"given_name": "Zephyrine", "family_name": "Brugnatelli"}),  # close
    ("name_match", {"given_name": "Jeanne", "family_name": "Durand"}),
    ("iban_holder_match", {"iban": "FR7699990005100008888999949"}),
    ("iban_holder_match", {"iban": "FR7699990000010001234567834"}),
    ("age_over", {"age": 18}),
    ("age_over", {"age": 40}),
    ("address_match", {"street": "77b r Planchamp", "postal_code": "25300", "city": "PONTARLIER"}),
    ("address_match", {"street": "77 rue Planchamp", "postal_code": "25300", "city": "Pontarlier"}),
    ("address_match", {"street": "1 rue Neuve", "postal_code": "25300", "city": "Pontarlier"}),
    ("income_below", {"threshold": 40000}),
    ("income_below", {"threshold": 20000}),
]


@pytest.mark.parametrize(("check", "members"), ASKED)
def test_answers_hold_no_source_value(check: str, members: dict[str, object]) -> None:
    result = evaluate(_one(check, **members), HELD, TODAY)
    claims = result.to_claims()
    shown = json.dumps(claims, ensure_ascii=False) + repr(result) + str(result)
    shown += repr(describe_answer(result)) + repr(describe_question(result.request))
    for secret in SECRETS:
        assert secret not in shown, secret
    # Not even what the partner typed: only the id and the non-personal parameter come back.
    assert set(claims) <= {"type", "check", "id", "age", "threshold", "result"}


def test_the_close_match_name_is_sent_only_when_revealed() -> None:
    result = evaluate(
        _one("name_match", given_name="Zephyrine", family_name="Brugnatelli", id="who"),
        HELD,
        TODAY,
    )
    assert result.answer is Category.CLOSE_MATCH
    assert result.to_claims() == {
        "type": "sharelock_check",
        "check": "name_match",
        "id": "who",
        "result": "close_match",
    }
    assert result.to_claims(reveal_actual_name=True)["actual_name"] == {
        "given_name": "Zéphyrine",
        "family_name": "Quintavalle épouse Brugnatelli",
    }
    assert "Quintavalle" not in repr(result) + repr(result.actual_name)
    # A match or no match has no name to reveal.
    matched = evaluate(_one("name_match", given_name="Zéphyrine", family_name="Quintavalle-"
                            "Brugnatelli"), HELD, TODAY)  # fmt: skip
    assert matched.answer is Category.MATCH
    assert "actual_name" not in matched.to_claims(reveal_actual_name=True)


def test_claims_shapes_are_json() -> None:
    results = [evaluate(_one(check, **members), HELD, TODAY) for check, members in ASKED]
    claims = [result.to_claims() for result in results]
    assert json.loads(json.dumps(claims)) == claims
    assert claims[5] == {"type": "sharelock_check", "check": "age_over", "age": 18, "result": True}
    assert claims[6]["result"] is False
    assert claims[11] == {
        "type": "sharelock_check",
        "check": "income_below",
        "threshold": 20000,
        "result": False,
    }
    assert [c["result"] for c in claims[:5]] == [
        "match", "close_match", "no_match", "match", "no_match",
    ]  # fmt: skip
    assert [c["result"] for c in claims[7:10]] == ["match", "close_match", "no_match"]


def test_missing_or_empty_values_cannot_be_checked() -> None:
    for check, members in ASKED:
        request = _one(check, **members)
        assert evaluate(request, {}, TODAY).to_claims()["result"] == "check_not_possible"
        emptied = {scope: dict.fromkeys(fields, " ") for scope, fields in HELD.items()}
        assert evaluate(request, emptied, TODAY).answer is Category.CHECK_NOT_POSSIBLE


# -- consent-screen wording --------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def test_both_languages_have_every_key_with_the_same_placeholders() -> None:
    assert set(MESSAGES) == {"en", "fr"}
    assert set(MESSAGES["en"]) == set(MESSAGES["fr"])
    doc = DOC.read_text("utf-8")
    for key, english in MESSAGES["en"].items():
        assert set(_PLACEHOLDER.findall(english)) == set(_PLACEHOLDER.findall(MESSAGES["fr"][key]))
        assert key.removesuffix(".no").removesuffix(".yes") in doc  # published in docs/checks.md


def test_every_question_and_answer_renders_in_both_languages() -> None:
    for check, members in ASKED:
        result = evaluate(_one(check, **members), HELD, TODAY)
        for lang in ("en", "fr"):
            assert "{" not in render(describe_question(result.request), lang)
            assert "{" not in render(describe_answer(result), lang)


def test_rendered_texts() -> None:
    iban = describe_question(_one("iban_holder_match", iban="fr7699990005100008888999949"))
    assert render(iban, "en") == (
        "Is the account FR76 9999 0005 1000 0888 8999 949 yours at this bank?"
    )
    income = describe_question(_one("income_below", threshold=30000))
    assert render(income, "en") == "Is your reference taxable income below €30,000?"
    assert "30\u202f000\u00a0€" in render(income, "fr")
    close = evaluate(_one("name_match", given_name="Zephyrine", family_name="Brugnatelli"), HELD,
                     TODAY)  # fmt: skip
    assert render(describe_answer(close), "fr").startswith(
        "Presque\u202f: votre nom ici est Zéphyrine Quintavalle épouse Brugnatelli."
    )
    adult = evaluate(_one("age_over", age=18), HELD, TODAY)
    assert (render(describe_answer(adult), "en"), render(describe_answer(adult), "fr")) == (
        "Yes",
        "Oui",
    )
