"""The root of Sharelock's typed errors.

Each package raises its own subclasses; the web layer maps them to HTTP answers in one place
(`sharelock.web.errors`). No message of any of these ever carries a secret or personal value:
they are built from fixed text and from identifiers (key ids, labels, paths) only.
"""

from __future__ import annotations


class SharelockError(Exception):
    """Base of every error Sharelock raises on purpose."""


class ConfigError(SharelockError):
    """A setting is missing or wrong; the message names the variable and what to do."""


class ServiceUnavailable(SharelockError):
    """A backing service (HSM, Redis, database) does not answer: the broker fails closed."""
