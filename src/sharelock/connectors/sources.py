"""What each portal looks like to its connector: where to log in, which page holds which field.

This is the part of a connector that changes when a portal redesigns its site, so it is data,
not code: the login form's field names, for each data page its path, the marker its
`<body data-page>` carries and which `data-field` holds which (scope, field), and for each
document scope the page listing the files and the `data-document` of the link to download.
The generic `PortalConnector` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sharelock.connectors.base import DataSourceInfo
from sharelock.connectors.validation import validate_tax_number
from sharelock.scopes import DOCUMENT_SCOPES, SCOPE_FIELDS


def _strip(login: str) -> str:
    return login.strip()


@dataclass(frozen=True, slots=True)
class PageSpec:
    """One data page: its path under the portal, its marker, and `data-field` -> (scope, field)."""

    path: str
    marker: str
    fields: Mapping[str, tuple[str, str]]

    def scopes(self) -> frozenset[str]:
        return frozenset(scope for scope, _ in self.fields.values())


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    """A document scope: the page that links to the file, its marker, the link's
    `data-document`, and the name to give the file if the portal gives none."""

    scope: str
    path: str
    marker: str
    link: str
    filename: str = "document.pdf"


@dataclass(frozen=True, slots=True)
class PortalSpec:
    info: DataSourceInfo
    prefix: str  # path of the portal under the base URL, e.g. "/bank"
    login_field: str
    pages: tuple[PageSpec, ...]
    password_field: str = "password"  # noqa: S105 (a form field name, not a secret)
    otp_field: str = "code"
    login_path: str = "/login"
    # Turns what the user typed into what the portal expects; raises InvalidValue if it cannot.
    normalise_login: Callable[[str], str] = field(default=_strip)
    documents: tuple[DocumentSpec, ...] = ()
    # "Remember this device" (for `info.remembers_device`): the login form's checkbox, and
    # where a device token signs in (`resume_path`) or is revoked (`forget_path`); both take
    # the login form's hidden fields and the token as `device_token_field`.
    remember_field: str = "remember_device"
    resume_path: str = "/resume"
    forget_path: str = "/resume/forget"
    device_token_field: str = "device_token"  # noqa: S105 (a form field name)

    def __post_init__(self) -> None:
        """Every field of every scope the source declares must be read from some page, and
        every document scope downloaded from one."""
        covered = {pair for page in self.pages for pair in page.fields.values()}
        needed = {
            (scope, name)
            for scope in self.info.scopes
            if scope not in DOCUMENT_SCOPES
            for name in SCOPE_FIELDS[scope]
        }
        if covered != needed:
            raise ValueError(f"{self.info.id}: pages do not cover exactly its scopes' fields")
        documents = [spec.scope for spec in self.documents]
        wanted = [scope for scope in self.info.scopes if scope in DOCUMENT_SCOPES]
        if sorted(documents) != sorted(wanted):
            raise ValueError(f"{self.info.id}: documents do not match its document scopes")


def _fields(**pairs: str) -> Mapping[str, tuple[str, str]]:
    """`last_name="identity.family_name"` -> {"last-name": ("identity", "family_name")}."""
    out: dict[str, tuple[str, str]] = {}
    for attr, target in pairs.items():
        scope, name = target.split(".")
        out[attr.replace("_", "-")] = (scope, name)
    return MappingProxyType(out)


_IDENTITY_ADDRESS = _fields(
    civility="identity.gender",
    last_name="identity.family_name",
    first_name="identity.given_name",
    birth_date="identity.birthdate",
    birth_place="identity.birthplace",
    address_line="address.street",
    postcode="address.postal_code",
    town="address.city",
    country="address.country",
)

BANK = PortalSpec(
    info=DataSourceInfo(
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
        remembers_device=True,
    ),
    prefix="/bank",
    login_field="username",
    pages=(
        PageSpec("/profile", "profile", _IDENTITY_ADDRESS),
        PageSpec(
            "/accounts",
            "accounts",
            _fields(
                holder="bank_account.account_holder",
                iban="bank_account.iban",
                bic="bank_account.bic",
            ),
        ),
    ),
    documents=(
        DocumentSpec("bank_details_document", "/documents", "documents", "bank-details", "rib.pdf"),
        DocumentSpec(
            "bank_statement_document", "/documents", "documents", "statement", "statement.pdf"
        ),
    ),
)

TELECOM = PortalSpec(
    info=DataSourceInfo(
        id="sandbox-telecom",
        name="Sandbox Télécom",
        scopes=("identity", "address", "phone", "email"),
        remembers_device=True,
    ),
    prefix="/telecom",
    login_field="login",
    pages=(
        PageSpec(
            "/account",
            "account",
            MappingProxyType({**_IDENTITY_ADDRESS, **_fields(email="email.email")}),
        ),
        PageSpec("/lines", "lines", _fields(msisdn="phone.phone_number")),
    ),
)

ENERGY = PortalSpec(
    info=DataSourceInfo(
        id="sandbox-energy",
        name="Énergie Sandbox",
        scopes=("address", "email", "proof_of_address"),
        login_label="Customer number or login",
    ),
    prefix="/energy",
    login_field="customer",
    pages=(
        PageSpec(
            "/contract",
            "contract",
            _fields(
                supply_street="address.street",
                supply_postcode="address.postal_code",
                supply_city="address.city",
                supply_country="address.country",
                contact_email="email.email",
            ),
        ),
    ),
    documents=(
        DocumentSpec("proof_of_address", "/documents", "documents", "latest-bill", "bill.pdf"),
    ),
)

TAX = PortalSpec(
    info=DataSourceInfo(
        id="sandbox-tax",
        name="Impôts Sandbox",
        scopes=("identity", "tax_notice", "tax_notice_document"),
        login_label="Tax number (13 digits)",
        login_pattern=r"[0-9]{13}",
    ),
    prefix="/tax",
    login_field="spi",
    normalise_login=validate_tax_number,
    pages=(
        PageSpec(
            "/etat-civil",
            "etat-civil",
            _fields(
                sexe="identity.gender",
                nom="identity.family_name",
                prenom="identity.given_name",
                date_naissance="identity.birthdate",
                lieu_naissance="identity.birthplace",
            ),
        ),
        PageSpec(
            "/avis",
            "avis",
            _fields(
                annee_revenus="tax_notice.tax_year",
                revenu_fiscal_reference="tax_notice.reference_income",
                nombre_parts="tax_notice.household_shares",
                reference_avis="tax_notice.notice_reference",
            ),
        ),
    ),
    documents=(
        DocumentSpec("tax_notice_document", "/documents", "documents", "avis", "tax-notice.pdf"),
    ),
)

PORTALS: Mapping[str, PortalSpec] = MappingProxyType(
    {spec.info.id: spec for spec in (BANK, TELECOM, ENERGY, TAX)}
)
"""The sandbox portals' connectors' specs, by data source id."""
