"""Sharelock: an identity-data sharing broker.

Credentials are encrypted in the user's browser, opened with keys that never leave a PKCS#11
HSM, the collected data is delivered once to the partner that asked for it, then erased.
"""

__version__ = "0.1.0"
