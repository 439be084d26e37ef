"""The partner registry: partners (online services), their redirect URIs, scopes and keys.

Public surface: `PartnerRegistry`, the frozen `Partner` it hands out, and the errors.
"""

from sharelock.registry.errors import InvalidPartner, RegistryError, RegistryUnavailable
from sharelock.registry.partners import Partner, PartnerRegistry, UnknownPartner

__all__ = [
    "InvalidPartner",
    "Partner",
    "PartnerRegistry",
    "RegistryError",
    "RegistryUnavailable",
    "UnknownPartner",
]
