"""The four sandbox portals: who can log in to each, how, and what their pages print.

Each portal prints data its own way (a French date, an IBAN in groups of four, "38 512 €"), and
marks each value with a stable `data-field` attribute of its own choosing, the way a real site
has ids a scraper relies on. The connectors know those names; the sandbox never imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from sharelock.sandbox.documents import bank_details, bank_statement, energy_bill, tax_notice
from sharelock.sandbox.hostile import HOSTILE
from sharelock.sandbox.people import (
    ALICE,
    BROKEN,
    CAROLINE,
    CLAIRE,
    DAVID,
    ELEONORE,
    EMILIE,
    FRANCOIS,
    HELENE,
    JULIEN,
    LEA,
    ROBERT,
    SOPHIE,
    THOMAS,
    Person,
)

OTP_CODE = "123456"
"""The one-time code every sandbox account that asks for one accepts."""


class Behaviour(StrEnum):
    """What happens after a right password."""

    OK = "ok"  # logged in straight away
    OTP = "otp"  # asked for a one-time code first
    LOCKED = "locked"  # "account locked"
    SLOW = "slow"  # logged in, but the answer comes after `slow_seconds`
    BROKEN = "broken"  # logged in; the data pages print invalid values
    DOWN = "down"  # HTTP 503


@dataclass(frozen=True, slots=True)
class Account:
    login: str
    password: str
    behaviour: Behaviour
    person: Person | None = None
    # A kind of `sharelock.sandbox.hostile.VARIANTS`: the account's documents are that file.
    document_variant: str | None = None


@dataclass(frozen=True, slots=True)
class FieldView:
    """One printed value: `attr` is its data-field, `text` what a human reads, `machine` (if
    set) a machine-readable form put in a `datetime` attribute, as `<time>` does."""

    attr: str
    label: str
    text: Callable[[Person], str]
    machine: Callable[[Person], str] | None = None


@dataclass(frozen=True, slots=True)
class PageView:
    slug: str
    title: str
    layout: Literal["dl", "table"]
    fields: tuple[FieldView, ...]


@dataclass(frozen=True, slots=True)
class DocumentView:
    """One file of the "Documents" page: `attr` is its link's `data-document`, `make` builds
    it for a person (`sharelock.sandbox.documents`)."""

    attr: str
    title: str
    filename: str
    make: Callable[[Person], bytes]


@dataclass(frozen=True, slots=True)
class SandboxSource:
    key: str  # URL prefix, without slash
    id: str
    name: str
    scopes: tuple[str, ...]
    login_label: str
    login_field: str  # the name of the login input in the form
    accounts: Mapping[str, Account]
    pages: tuple[PageView, ...]
    login_pattern: str | None = None
    documents: tuple[DocumentView, ...] = ()
    # "Remember this device": a login can mint a device token that `/resume` takes instead of
    # the password and code (portal.py). Single use: the token is revoked by its first resume.
    remembers_device: bool = False
    device_token_single_use: bool = False


def _french_date(iso: str) -> str:
    """yyyy-mm-dd printed as dd/mm/yyyy, by slicing: a broken date stays broken."""
    return f"{iso[8:10]}/{iso[5:7]}/{iso[0:4]}"


def _grouped(value: str, size: int = 4) -> str:
    return " ".join(value[i : i + size] for i in range(0, len(value), size))


def _euros(amount: int) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,}".replace(",", "\u202f") + "\u00a0€"


def _notice_reference(ref: str) -> str:
    return f"{ref[0:2]} {ref[2:4]} {ref[4:11]} {ref[11:]}".strip()


def _accounts(*accounts: Account) -> Mapping[str, Account]:
    return MappingProxyType({account.login: account for account in accounts})


def _standard_accounts(
    ok: Account,
    otp: Account,
    *,
    locked: str,
    slow: str,
    broken: str,
    down: str,
    checks: tuple[Account, ...] = (),
) -> Mapping[str, Account]:
    """Every portal has the same cast: straight in, one-time code, locked, slow, broken, down;
    and, where the checks need them (docs/checks.md), people built for the checks."""
    return _accounts(
        ok,
        otp,
        Account(locked, "locked-pass", Behaviour.LOCKED),
        Account(slow, "slow-pass", Behaviour.SLOW, SOPHIE),
        Account(broken, "broken-pass", Behaviour.BROKEN, BROKEN),
        Account(down, "down-pass", Behaviour.DOWN),
        *checks,
    )


_BIRTH_DATE = FieldView(
    "birth-date", "Date of birth", lambda p: _french_date(p.birthdate), lambda p: p.birthdate
)
_IDENTITY_EN = (
    FieldView("civility", "Title", lambda p: p.civility),
    FieldView("last-name", "Last name", lambda p: p.family_name),
    FieldView("first-name", "First name", lambda p: p.given_name),
    _BIRTH_DATE,
    FieldView("birth-place", "Place of birth", lambda p: p.birthplace),
)
_ADDRESS_EN = (
    FieldView("address-line", "Address", lambda p: p.street),
    FieldView("postcode", "Postcode", lambda p: p.postal_code),
    FieldView("town", "Town", lambda p: p.city),
    FieldView("country", "Country", lambda p: p.country),
)

BANK = SandboxSource(
    key="bank",
    id="sandbox-bank",
    name="Banque Sandbox",
    scopes=(
        "identity",
        "address",
        "bank_account",
        "bank_details_document",
        "bank_statement_document",
    ),
    login_label="Customer id",
    login_field="username",
    accounts=_standard_accounts(
        Account("alice", "alice-pass", Behaviour.OK, ALICE),
        Account("bob", "bob-pass", Behaviour.OTP, ROBERT),
        locked="locked",
        slow="slow",
        broken="broken",
        down="down",
        checks=(
            Account("eleonore", "eleonore-pass", Behaviour.OK, ELEONORE),
            Account("claire", "claire-pass", Behaviour.OK, CLAIRE),
            Account("lea", "lea-pass", Behaviour.OK, LEA),
        ),
    ),
    pages=(
        PageView("profile", "My profile", "dl", _IDENTITY_EN + _ADDRESS_EN),
        PageView(
            "accounts",
            "My accounts",
            "table",
            (
                FieldView("account-type", "Account", lambda p: "Compte courant"),
                FieldView("holder", "Holder", lambda p: p.full_name.upper()),
                FieldView("iban", "IBAN", lambda p: _grouped(p.iban)),
                FieldView("bic", "BIC", lambda p: p.bic),
            ),
        ),
    ),
    documents=(
        DocumentView("bank-details", "Relevé d'identité bancaire (RIB)", "rib.pdf", bank_details),
        DocumentView(
            "statement", "Relevé de compte, septembre 2025", "releve-2025-09.pdf", bank_statement
        ),
    ),
    remembers_device=True,
)

TELECOM = SandboxSource(
    key="telecom",
    id="sandbox-telecom",
    name="Sandbox Télécom",
    scopes=("identity", "address", "phone", "email"),
    login_label="Login",
    login_field="login",
    accounts=_standard_accounts(
        Account("carol", "carol-pass", Behaviour.OK, CAROLINE),
        Account("dave", "dave-pass", Behaviour.OTP, DAVID),
        locked="locked",
        slow="slow",
        broken="broken",
        down="down",
    ),
    pages=(
        PageView(
            "account",
            "My account",
            "dl",
            (*_IDENTITY_EN, *_ADDRESS_EN, FieldView("email", "Email", lambda p: p.email)),
        ),
        PageView(
            "lines",
            "My lines",
            "table",
            (
                FieldView("plan", "Plan", lambda p: "Forfait 100 Go"),
                FieldView("msisdn", "Number", lambda p: p.phone),
            ),
        ),
    ),
    # An operator that asks for a fresh consent each time: a device token opens one session.
    remembers_device=True,
    device_token_single_use=True,
)

ENERGY = SandboxSource(
    key="energy",
    id="sandbox-energy",
    name="Énergie Sandbox",
    scopes=("address", "email", "proof_of_address"),
    login_label="Customer number or login",
    login_field="customer",
    accounts=_standard_accounts(
        Account("erin", "erin-pass", Behaviour.OK, EMILIE),
        Account("frank", "frank-pass", Behaviour.OTP, FRANCOIS),
        locked="locked",
        slow="slow",
        broken="broken",
        down="down",
        checks=(
            Account("thomas", "thomas-pass", Behaviour.OK, THOMAS),
            *(
                Account(f"hostile-{kind}", "hostile-pass", Behaviour.OK, EMILIE, kind)
                for kind in HOSTILE
            ),
            Account("heavy", "heavy-pass", Behaviour.OK, EMILIE, "heavy"),
        ),
    ),
    pages=(
        PageView(
            "contract",
            "My contract",
            "dl",
            (
                FieldView("holder", "Contract holder", lambda p: p.full_name),
                FieldView("pdl", "Delivery point (PDL)", lambda p: p.delivery_point),
                FieldView("supply-street", "Supply address", lambda p: p.street),
                FieldView("supply-postcode", "Postcode", lambda p: p.postal_code),
                FieldView("supply-city", "City", lambda p: p.city),
                FieldView("supply-country", "Country", lambda p: p.country),
                FieldView("contact-email", "Contact email", lambda p: p.email),
            ),
        ),
    ),
    documents=(DocumentView("latest-bill", "Latest bill", "facture-2025-10.pdf", energy_bill),),
)

TAX = SandboxSource(
    key="tax",
    id="sandbox-tax",
    name="Impôts Sandbox",
    scopes=("identity", "tax_notice", "tax_notice_document"),
    login_label="Numéro fiscal (13 chiffres)",
    login_field="spi",
    login_pattern=r"[0-9]{13}",
    accounts=_standard_accounts(
        Account("1234567890123", "tax-pass", Behaviour.OK, HELENE),
        Account("2345678901234", "tax-otp-pass", Behaviour.OTP, JULIEN),
        locked="3456789012345",
        slow="5555555555555",
        broken="6666666666666",
        down="7777777777777",
        checks=(Account("4567890123456", "eleonore-pass", Behaviour.OK, ELEONORE),),
    ),
    pages=(
        PageView(
            "etat-civil",
            "État civil",
            "dl",
            (
                FieldView("sexe", "Civilité", lambda p: p.civility),
                FieldView("nom", "Nom", lambda p: p.family_name.upper()),
                FieldView("prenom", "Prénom", lambda p: p.given_name),
                FieldView(
                    "date-naissance",
                    "Date de naissance",
                    lambda p: _french_date(p.birthdate),
                    lambda p: p.birthdate,
                ),
                FieldView("lieu-naissance", "Lieu de naissance", lambda p: p.birthplace),
            ),
        ),
        PageView(
            "avis",
            "Mes avis d'impôt",
            "table",
            (
                FieldView("annee-revenus", "Revenus de", lambda p: p.tax.tax_year),
                FieldView(
                    "revenu-fiscal-reference",
                    "Revenu fiscal de référence",
                    lambda p: _euros(p.tax.reference_income),
                ),
                FieldView("nombre-parts", "Nombre de parts", lambda p: p.tax.household_shares),
                FieldView(
                    "reference-avis",
                    "Référence de l'avis",
                    lambda p: _notice_reference(p.tax.notice_reference),
                ),
            ),
        ),
    ),
    documents=(DocumentView("avis", "Avis d'impôt 2026", "avis-impot-2026.pdf", tax_notice),),
)

SOURCES: Mapping[str, SandboxSource] = MappingProxyType(
    {source.key: source for source in (BANK, TELECOM, ENERGY, TAX)}
)
"""The sandbox portals by URL prefix."""


def find_source(name: str) -> SandboxSource | None:
    """A source by URL prefix ("bank") or data source id ("sandbox-bank")."""
    return SOURCES.get(name) or next((s for s in SOURCES.values() if s.id == name), None)
