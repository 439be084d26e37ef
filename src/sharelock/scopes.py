"""The data categories a partner may ask for (SPEC, "Data categories"), and their fields.

Document scopes (`DOCUMENT_SCOPES`) carry one file the data source issued (a bill, a notice,
account details), checked by `sharelock.documents`: `document` is the file in standard base64,
beside its `media_type`, `filename`, number of `pages` and `sha256` (hex), so that a document is
a `scope -> field -> str` record like any other and is sealed, reviewed, released and erased
the same way.
"""

from __future__ import annotations

from types import MappingProxyType

DOCUMENT_FIELDS: tuple[str, ...] = ("document", "media_type", "filename", "pages", "sha256")
"""The fields of every document scope; `document` is the file itself, in standard base64."""

SCOPE_FIELDS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "identity": ("family_name", "given_name", "gender", "birthdate", "birthplace"),
        "address": ("street", "postal_code", "city", "country"),
        "phone": ("phone_number",),
        "email": ("email",),
        "bank_account": ("account_holder", "iban", "bic"),
        "tax_notice": ("tax_year", "reference_income", "household_shares", "notice_reference"),
        "proof_of_address": DOCUMENT_FIELDS,
        "tax_notice_document": DOCUMENT_FIELDS,
        "bank_details_document": DOCUMENT_FIELDS,
        "bank_statement_document": DOCUMENT_FIELDS,
    }
)

SCOPES: tuple[str, ...] = tuple(SCOPE_FIELDS)

DOCUMENT_SCOPES: frozenset[str] = frozenset(
    scope for scope, fields in SCOPE_FIELDS.items() if fields == DOCUMENT_FIELDS
)

# Fields the person may untick on the review screen; the others are what the scope is for.
OPTIONAL_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("identity", "gender"),
        ("identity", "birthplace"),
        ("bank_account", "bic"),
        ("tax_notice", "household_shares"),
    }
)

FIELD_LABELS: MappingProxyType[str, str] = MappingProxyType(
    {
        "family_name": "Family name",
        "given_name": "Given name",
        "gender": "Gender",
        "birthdate": "Date of birth",
        "birthplace": "Place of birth",
        "street": "Street",
        "postal_code": "Postal code",
        "city": "City",
        "country": "Country",
        "phone_number": "Phone number",
        "email": "Email",
        "account_holder": "Account holder",
        "iban": "IBAN",
        "bic": "BIC",
        "tax_year": "Tax year",
        "reference_income": "Reference taxable income",
        "household_shares": "Household shares",
        "notice_reference": "Tax notice reference",
        "document": "Document",
        "media_type": "File type",
        "filename": "File name",
        "pages": "Pages",
        "sha256": "SHA-256 fingerprint",
    }
)
