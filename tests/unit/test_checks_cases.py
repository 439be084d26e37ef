"""The published test cases of the checks (tests/unit/check_cases.json): each one gives the
answer it says, and docs/checks.md shows exactly these cases, so the table and the tests cannot
drift. After changing the cases, print the table with `python -m tests.unit.test_checks_cases`
and paste it between the markers in docs/checks.md."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sharelock.checks import CHECK_TYPE, Category, evaluate, parse_authorization_details

ROOT = Path(__file__).resolve().parents[2]
CASES_FILE = Path(__file__).with_name("check_cases.json")
DOC = ROOT / "docs" / "checks.md"
START = "<!-- cases: generated from tests/unit/check_cases.json -->"
END = "<!-- end of cases -->"
DEFAULT_TODAY = date(2026, 6, 1)

CASES: list[dict[str, Any]] = json.loads(CASES_FILE.read_text("utf-8"))["cases"]


def _code(value: object) -> str:
    return f"`{value}`"


def _row(case: dict[str, Any]) -> str:
    request = parse_authorization_details([{"type": CHECK_TYPE, **case["request"]}])[0]
    sent = ", ".join(
        f"{name} {_code(value)}" for name, value in case["request"].items() if name != "check"
    )
    held_parts = []
    for scope, names in request.needs.items():
        fields = case["source"].get(scope)
        if fields is None:
            held_parts.append(f"no {_code(scope)}")
        else:
            held_parts.extend(f"{name} {_code(fields[name])}" for name in names)
    held = ", ".join(held_parts)
    if "today" in case:
        held += f" (on {case['today']})"
    result = _code(json.dumps(case["expected"], ensure_ascii=False).strip('"'))
    return f"| {request.check.value} | {sent} | {held} | {result} | {case['why']} |"


def render_table() -> str:
    lines = [
        "| check | the partner sends | the source holds | result | why |",
        "|---|---|---|---|---|",
        *(_row(case) for case in CASES),
    ]
    return "\n".join(lines)


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{n}-{c['request']['check']}" for n, c in enumerate(CASES)]
)
def test_published_case(case: dict[str, Any]) -> None:
    requests = parse_authorization_details([{"type": CHECK_TYPE, **case["request"]}])
    today = date.fromisoformat(case.get("today", DEFAULT_TODAY.isoformat()))
    result = evaluate(requests[0], case["source"], today)
    assert result.to_claims()["result"] == case["expected"], case["why"]
    if result.answer is Category.CLOSE_MATCH and case["request"]["check"] == "name_match":
        identity = case["source"]["identity"]
        assert result.actual_name is not None
        assert (result.actual_name.given_name, result.actual_name.family_name) == (
            identity["given_name"],
            identity["family_name"],
        )
    else:
        assert result.actual_name is None


def test_every_category_and_check_is_covered() -> None:
    seen = {(c["request"]["check"], json.dumps(c["expected"])) for c in CASES}
    for check in ("name_match", "address_match"):
        for category in Category:
            assert (check, json.dumps(category.value)) in seen, (check, category)
    for check in ("age_over", "income_below"):
        for answer in (True, False, Category.CHECK_NOT_POSSIBLE.value):
            assert (check, json.dumps(answer)) in seen, (check, answer)
    for answer in ("match", "no_match", "check_not_possible"):
        assert ("iban_holder_match", json.dumps(answer)) in seen


def test_docs_table_is_the_case_file() -> None:
    text = DOC.read_text("utf-8")
    assert START in text and END in text, "docs/checks.md lost its case markers"
    published = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert published == render_table(), (
        "docs/checks.md is out of step: python -m tests.unit.test_checks_cases"
    )


if __name__ == "__main__":
    print(render_table())  # regenerates the docs table
