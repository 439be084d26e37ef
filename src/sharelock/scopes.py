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
