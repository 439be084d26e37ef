"""A check evaluated against what a connector collected, and its answer for the partner.

`collected` is the connectors' output: scope -> field -> value, already validated and in
canonical form (`connectors.validation`): `birthdate` an ISO date, `iban` upper case without
spaces, `reference_income` whole euros as digits ("38512"), names and streets as the source
printed them (the tax office prints family names in capitals). A value that is missing, empty or
not in that form makes the answer `CHECK_NOT_POSSIBLE`, never an exception: the source did not
give what the question needs.

A `CheckResult` holds the answer only. The one source value it may carry is the name on a
`CLOSE_MATCH` to `name_match` (`actual_name`), which `to_claims` includes only when the caller
says the person agreed. Neither `repr` shows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from sharelock.checks.compare import Category, compare_addresses, compare_names
from sharelock.checks.requests import (
    CHECK_TYPE,
    AddressMatch,
    AgeOver,
    CheckRequest,
    IbanHolderMatch,
    IncomeBelow,
    NameMatch,
)

_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_WHOLE_EUROS = re.compile(r"[0-9]{1,12}")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")

Answer = Category | bool
"""`True`/`False` for `age_over` and `income_below`, a `Category` for the others; any check
whose value the source did not give answers `Category.CHECK_NOT_POSSIBLE`."""


@dataclass(frozen=True, slots=True)
class ActualName:
    """The name as the source gave it, for a `CLOSE_MATCH`; sent only if the person agrees."""

    given_name: str = field(repr=False)
    family_name: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CheckResult:
    request: CheckRequest
    answer: Answer
    actual_name: ActualName | None = field(default=None, repr=False)

    def to_claims(self, *, reveal_actual_name: bool = False) -> dict[str, object]:
        """The answer as the partner receives it (docs/checks.md, "Answers"): the check, its
        `id` and its non-personal parameter (`age`, `threshold`) echoed, and `result`; with
        `reveal_actual_name` (the person agreed) and a `CLOSE_MATCH` name, `actual_name`.
        What the partner typed is not echoed: it has it, and the `id` or the position in the
        request tells which answer is which."""
        request = self.request
        claims: dict[str, object] = {"type": CHECK_TYPE, "check": request.check.value}
        if request.id is not None:
            claims["id"] = request.id
        if isinstance(request, AgeOver):
            claims["age"] = request.age
        elif isinstance(request, IncomeBelow):
            claims["threshold"] = request.threshold
        claims["result"] = self.answer.value if isinstance(self.answer, Category) else self.answer
        if reveal_actual_name and self.actual_name is not None:
            claims["actual_name"] = {
                "given_name": self.actual_name.given_name,
                "family_name": self.actual_name.family_name,
            }
        return claims


def age_on(birthdate: date, today: date) -> int:
    """Whole years lived on `today`. Someone born on 29 February has a birthday on 1 March in a
    common year: not yet a year older on 28 February (the later day, the safe side for an
    age limit)."""
    before_birthday = (today.month, today.day) < (birthdate.month, birthdate.day)
    return today.year - birthdate.year - before_birthday


def _needed_values(
    request: CheckRequest, collected: Mapping[str, Mapping[str, str]]
) -> dict[str, str] | None:
    """The values the check needs, or None if the source did not give them all."""
    values: dict[str, str] = {}
    for scope, names in request.needs.items():
        fields = collected.get(scope, {})
        for name in names:
            value = fields.get(name)
            if not isinstance(value, str) or not value.strip():
                return None
            values[name] = value
    return values


def _birthdate(text: str) -> date | None:
    match = _ISO_DATE.fullmatch(text.strip())
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _answer(request: CheckRequest, values: Mapping[str, str], today: date) -> Answer:
    match request:
        case NameMatch():
            return compare_names(
                request.given_name, request.family_name, values["given_name"],
                values["family_name"],
            )  # fmt: skip
        case IbanHolderMatch():
            iban = _SPACES.sub("", values["iban"]).upper()  # the electronic form, both sides
            return Category.MATCH if iban == request.iban else Category.NO_MATCH
        case AgeOver():
            born = _birthdate(values["birthdate"])
            if born is None or born > today:
                return Category.CHECK_NOT_POSSIBLE
            return age_on(born, today) >= request.age
        case AddressMatch():
            return compare_addresses(
                (request.street, request.postal_code, request.city),
                (values["street"], values["postal_code"], values["city"]),
            )
        case IncomeBelow():
            income = _SPACES.sub("", values["reference_income"]).removesuffix("€")
            if not _WHOLE_EUROS.fullmatch(income):
                return Category.CHECK_NOT_POSSIBLE
            return int(income) < request.threshold


def evaluate(
    request: CheckRequest, collected: Mapping[str, Mapping[str, str]], today: date
) -> CheckResult:
    """Answer one check from the collected data; `today` decides ages (the caller's clock)."""
    values = _needed_values(request, collected)
    if values is None:
        return CheckResult(request, Category.CHECK_NOT_POSSIBLE)
    answer = _answer(request, values, today)
    if isinstance(request, NameMatch) and answer is Category.CLOSE_MATCH:
        actual = ActualName(values["given_name"], values["family_name"])
        return CheckResult(request, answer, actual)
    return CheckResult(request, answer)
