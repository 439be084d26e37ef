"""The data categories a partner may ask for (SPEC, "Data categories"), and their fields."""

from __future__ import annotations

from types import MappingProxyType

SCOPE_FIELDS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "identity": ("family_name", "given_name", "gender", "birthdate", "birthplace"),
        "address": ("street", "postal_code", "city", "country"),
        "phone": ("phone_number",),
        "email": ("email",),
        "bank_account": ("account_holder", "iban", "bic"),
        "tax_notice": ("tax_year", "reference_income", "household_shares", "notice_reference"),
    }
)

SCOPES: tuple[str, ...] = tuple(SCOPE_FIELDS)

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
    }
)
