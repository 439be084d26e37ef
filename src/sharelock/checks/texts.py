"""What the consent screen says about a check: the question, and the answer that will be sent.

`describe_question` and `describe_answer` return a `Description`: a message key and its
parameters, the way the consent screen's catalogues work (`web/i18n.py`: symbolic msgids with
`{name}` placeholders). `MESSAGES` holds the English and French texts of every key, to be
copied into those catalogues; `render` formats a description in one of them, for callers that
want a plain string.

The parameters are what the person is shown about herself: what the partner typed (a name, an
IBAN, an address) and, for a `CLOSE_MATCH` name, the name the source holds. They are personal
data, for the page only: `Description`'s `repr` leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sharelock.checks.compare import Category
from sharelock.checks.requests import (
    AddressMatch,
    AgeOver,
    CheckRequest,
    IbanHolderMatch,
    IncomeBelow,
    NameMatch,
)
from sharelock.checks.results import CheckResult


@dataclass(frozen=True, slots=True)
class Description:
    key: str
    params: Mapping[str, str] = field(default_factory=dict, repr=False)


_NNBSP = "\u202f"  # French puts a narrow no-break space before "?" and ":" and between thousands

MESSAGES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "en": MappingProxyType(
            {
                "check.name_match.question": "Is your name {given_name} {family_name}?",
                "check.iban_holder_match.question": "Is the account {iban} yours at this bank?",
                "check.age_over.question": "Are you at least {age} years old?",
                "check.address_match.question": ("Is your address {street}, {postal_code} {city}?"),
                "check.income_below.question": (
                    "Is your reference taxable income below €{threshold}?"
                ),
                "check.answer.yes": "Yes",
                "check.answer.no": "No",
                "check.answer.match": "Yes, it matches",
                "check.answer.close_match": "Almost: it is close, but not the same",
                "check.answer.close_match_name": (
                    "Almost: your name here is {given_name} {family_name}. It is sent only "
                    "if you agree."
                ),
                "check.answer.no_match": "No, it does not match",
                "check.answer.check_not_possible": (
                    "Cannot be checked: this source does not give this information"
                ),
            }
        ),
        "fr": MappingProxyType(
            {
                "check.name_match.question": (
                    f"Vous appelez-vous {{given_name}} {{family_name}}{_NNBSP}?"
                ),
                "check.iban_holder_match.question": (
                    f"Le compte {{iban}} est-il le vôtre dans cette banque{_NNBSP}?"
                ),
                "check.age_over.question": f"Avez-vous au moins {{age}} ans{_NNBSP}?",
                "check.address_match.question": (
                    f"Votre adresse est-elle {{street}}, {{postal_code}} {{city}}{_NNBSP}?"
                ),
                "check.income_below.question": (
                    "Votre revenu fiscal de référence est-il inférieur à "
                    f"{{threshold}}\u00a0€{_NNBSP}?"
                ),
                "check.answer.yes": "Oui",
                "check.answer.no": "Non",
                "check.answer.match": "Oui, cela correspond",
                "check.answer.close_match": (f"Presque{_NNBSP}: c'est proche, mais pas identique"),
                "check.answer.close_match_name": (
                    f"Presque{_NNBSP}: votre nom ici est {{given_name}} {{family_name}}. "
                    "Il n'est transmis que si vous l'acceptez."
                ),
                "check.answer.no_match": "Non, cela ne correspond pas",
                "check.answer.check_not_possible": (
                    "Vérification impossible\u00a0: cette source ne donne pas cette information"
                ),
            }
        ),
    }
)
_THOUSANDS = MappingProxyType({"en": ",", "fr": _NNBSP})


def _grouped(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def describe_question(request: CheckRequest) -> Description:
    """The question a check asks, with what the partner typed as parameters."""
    key = f"check.{request.check.value}.question"
    match request:
        case NameMatch():
            params = {"given_name": request.given_name, "family_name": request.family_name}
        case IbanHolderMatch():
            params = {"iban": _grouped(request.iban)}
        case AgeOver():
            params = {"age": str(request.age)}
        case AddressMatch():
            params = {
                "street": request.street,
                "postal_code": request.postal_code,
                "city": request.city,
            }
        case IncomeBelow():
            params = {"threshold": str(request.threshold)}
    return Description(key, MappingProxyType(params))


def describe_answer(result: CheckResult) -> Description:
    """The answer that will be sent, in words; for a `CLOSE_MATCH` name, with the name the
    source holds (the person decides whether the partner may have it)."""
    answer = result.answer
    if isinstance(answer, bool):
        return Description("check.answer.yes" if answer else "check.answer.no")
    if answer is Category.CLOSE_MATCH and result.actual_name is not None:
        name = result.actual_name
        params = {"given_name": name.given_name, "family_name": name.family_name}
        return Description("check.answer.close_match_name", MappingProxyType(params))
    return Description(f"check.answer.{answer.value}")


def render(description: Description, lang: str) -> str:
    """`description` in `lang` ("en" or "fr"); a threshold gets the language's digit grouping."""
    params = dict(description.params)
    if "threshold" in params:
        params["threshold"] = f"{int(params['threshold']):,}".replace(",", _THOUSANDS[lang])
    return MESSAGES[lang][description.key].format(**params)
