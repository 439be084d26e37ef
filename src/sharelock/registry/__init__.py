"""The partner registry: partners (online services), their redirect URIs, scopes and keys.

Public surface: `PartnerRegistry`, the frozen `Partner` it hands out, and the errors.
"""

from sharelock.registry.errors import InvalidPartner, RegistryError, RegistryUnavailable
from sharelock.registry.partners import Partner, PartnerRegistry, UnknownPartner
from sharelock.registry.validation import encryption_key

__all__ = [
    "InvalidPartner",
    "Partner",
    "PartnerRegistry",
    "RegistryError",
    "RegistryUnavailable",
    "UnknownPartner",
    "encryption_key",
]
