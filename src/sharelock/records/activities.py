"""What the broker processes, why, on which legal basis, for whom and for how long.

Everything that can come from the configuration does: the retention limits (`Retention`, with
their descriptions), the data categories and their fields (`sharelock.scopes`), the data
sources (`sharelock.connectors.sources.PORTALS`) and the partners (the registry, with their
GDPR role). What cannot (purposes, legal bases) is written once, here, beside the limits it
refers to, and a test checks that every retention limit belongs to some activity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sharelock.connectors import PORTALS
from sharelock.registry import Partner
from sharelock.scopes import SCOPE_FIELDS


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Activity:
    name: str
    purpose: str
    legal_basis: str
    data_subjects: str
    categories: tuple[Category, ...]
    recipients: tuple[str, ...]
    retention: tuple[str, ...]  # names of `Retention` fields
    role: str = "controller"
    transfers: str = "none by the broker itself (host it in the European Union)"
    notes: tuple[str, ...] = field(default=())


SCOPE_CATEGORIES = tuple(Category(scope, fields) for scope, fields in SCOPE_FIELDS.items())
CREDENTIALS = Category("connection credentials", ("login", "password", "one-time code"))
PSEUDONYM = Category("pseudonymised login", ("keyed hash of the data source and login",))
NAVIGATION = Category("navigation data", ("browser family", "device type"))
TRACE = Category(
    "transaction trace", ("data source", "online service (client id)", "event", "date", "outcome")
)

# Sharelock's role given the partner's GDPR role, as registered (`partners add --role`).
ROLE_TEXT = {
    "controller": "processor on the partner's behalf (Art. 28); the partner is the controller",
    "processor": "controller; the partner acts as its processor (Art. 28)",
    "joint": "joint controller with the partner (Art. 26)",
}

PERSON = "people who share their data through the broker"


def _sources() -> str:
    return ", ".join(f"{spec.info.name} ({source})" for source, spec in PORTALS.items())


def broker_record() -> list[Activity]:
    """The broker's own activities. They name `Retention` limits; the renderers read the
    values from the configured `Retention`, so the record shows the limits in force."""
    return [
        Activity(
            name="Sharing data with an online service",
            purpose=(
                "At the person's request, collect data a data source holds about them and pass "
                "it once to the online service that asked, after they reviewed and approved it"
            ),
            legal_basis="Consent (Art. 6(1)(a)), given on the consent screen for each share",
            data_subjects=PERSON,
            categories=(CREDENTIALS, *SCOPE_CATEGORIES),
            recipients=(
                "the online service that asked (the partner), the fields approved only",
                f"the data source the person picks, which receives their login: {_sources()}",
            ),
            retention=("session", "pushed_request", "authorization_code", "access_token"),
            role=(
                "set per partner when it is registered: controller, processor or joint "
                "controller (see 'Per partner')"
            ),
            notes=(
                "Credentials are encrypted in the browser and decrypted in the HSM only for the "
                "login; in clear they live for that login only and are wiped after.",
                "Collected data waits sealed (HSM key) in Redis and is erased when delivered.",
            ),
        ),
        Activity(
            name="Identity verification",
            purpose="Keep identity data to prove an identity check, when a partner needs one",
            legal_basis="Legitimate interest (Art. 6(1)(f)): proof of the verification",
            data_subjects=PERSON,
            categories=(Category("identity", SCOPE_FIELDS["identity"]),),
            recipients=("the online service that asked",),
            retention=("identity_data",),
        ),
        Activity(
            name="Biometric identity verification (special category, Art. 9)",
            purpose=(
                "When a partner asks it in a share: check a photo of the person's identity "
                "document and a short live capture of their face against each other and "
                "against the identity the data source gave"
            ),
            legal_basis=(
                "Explicit consent (Art. 9(2)(a)), asked on a screen of its own before any "
                "image is taken; a refusal is sent to the partner as such"
            ),
            data_subjects=PERSON,
            categories=(
                Category("identity document image", ("photo of the passport or identity card",)),
                Category("biometric data", ("live frames of the face", "face comparison")),
                Category("identity", ("given_name", "family_name", "birthdate")),
            ),
            recipients=(
                "the online service that asked: the outcome only (document type, issuing "
                "country, each check and its result), never an image",
            ),
            retention=("identity_data", "session"),
            notes=(
                "Images are encrypted in the browser to the broker's key and opened in the HSM "
                "only while the verification runs; they are erased from Redis as it starts.",
                "No image, face, embedding or value read from the document is logged, audited "
                "or delivered.",
            ),
        ),
        Activity(
            name="Audit trace: maintenance of the service and tracking of requests",
            purpose=(
                "Prove afterwards what was shared with whom and when; answer the person's and "
                "the authorities' requests; detect misuse"
            ),
            legal_basis=(
                "Legitimate interest (Art. 6(1)(f)) and accountability (Art. 5(2), Art. 24)"
            ),
            data_subjects=PERSON,
            categories=(TRACE, PSEUDONYM, NAVIGATION),
            recipients=(
                "auditors holding an auditor token (each query is itself recorded)",
                "competent authorities, on a lawful request",
            ),
            retention=("audit_trace",),
            notes=(
                "No clear login, credential, shared value, IP address or user agent is stored.",
                "Rows are hash-chained; checkpoints are signed with a key held in the HSM.",
            ),
        ),
        Activity(
            name="A person's rights without an account",
            purpose=(
                "Show a person the traces about them, give them a copy, erase what is kept, "
                "once they have proved who they are"
            ),
            legal_basis="Legal obligation (Art. 6(1)(c)): GDPR Art. 15, 17 and 20",
            data_subjects=PERSON,
            categories=(CREDENTIALS, PSEUDONYM),
            recipients=("the person, and the data source they sign in to as proof",),
            retention=("rights_proof",),
            notes=(
                "Proof is the share's signed receipt, or a fresh successful login at the data "
                "source through the same encrypted-credential step; a login alone is not proof.",
                "The proof holds the data source and the keyed hash of the login, sealed in "
                "Redis; the credentials are wiped after the login, the collected data at once.",
            ),
        ),
        Activity(
            name="Corrective maintenance of the connectors",
            purpose="Repair a connector after a failed collection",
            legal_basis="Consent (Art. 6(1)(a)), asked after the failure, never presumed",
            data_subjects="people whose collection failed and who agreed",
            categories=(Category("connection credentials", ("login", "password")), PSEUDONYM),
            recipients=(
                "the broker's maintenance staff, through 'sharelock maintenance show' (each "
                "opening is recorded in the audit trail first, with a reason code)",
            ),
            retention=("maintenance_credentials",),
            notes=(
                "Offered only when the data source was unavailable, too slow, or sent data that "
                "failed validation: failures that repairing the connector could fix. Never after "
                "a wrong password, a locked account or a wrong one-time code.",
                "Until the person answers, the credentials stay as received (the browser's JWE, "
                "sealed in Redis) within the session; a no, a new attempt or the session's end "
                "erases them.",
                "On a yes they are sealed with an AES key held in the HSM (not the encryption "
                "key, which rotation destroys) and kept in SQL with an expiry; "
                "'sharelock retention run' deletes them when it has passed.",
            ),
        ),
        Activity(
            name="An optional account, with passkeys",
            purpose=(
                "At the person's request, remember the data sources they share from, so that "
                "a later share needs no password typed (offered only after a share; the "
                "one-click share; periodic re-syncs only where the person allowed them; "
                "docs/accounts.md)"
            ),
            legal_basis="Consent (Art. 6(1)(a)), asked when the account is made, never presumed",
            data_subjects="people who create an account",
            categories=(
                Category(
                    "account",
                    ("random id", "creation and last-use dates", "digest of the recovery code"),
                ),
                Category("passkeys", ("credential id", "public key", "signature counter")),
                Category(
                    "connected sources",
                    (
                        "data source",
                        "keyed hash of the login",
                        "re-sync material (the source's device token, or the credentials), sealed",
                        "sync consent, status and last sync",
                    ),
                ),
                Category("consents", ("purpose", "data source", "dates")),
            ),
            recipients=("the person",),
            retention=("account", "account_session"),
            notes=(
                "No name, e-mail address or password: a passkey's private key stays with the "
                "person (their device or password manager); the broker keeps its public key.",
                "Re-sync material is sealed with an AES key held in the HSM, bound to its row; "
                "revoking a source or deleting the account erases it at once.",
                "Nothing collected from a source is kept between shares.",
                "The offer to remember a source is made after a share collected with a "
                "password; until the answer, what it would keep waits sealed in Redis within "
                "the session (remember-offer), and a no, a refusal or going on to the partner "
                "erases it (a device token is forgotten at the source at once).",
                "A periodic re-sync, off by default and allowed per source, only checks that "
                "the sign-in still works: nothing is collected, nothing kept.",
            ),
        ),
    ]


def partner_record(partner: Partner) -> Activity:
    """What is processed for one registered partner, and in which GDPR roles."""
    return Activity(
        name=f"Sharing with {partner.name} ({partner.client_id})",
        purpose=partner.purpose or "(no purpose registered: set one with 'partners add')",
        legal_basis="Consent (Art. 6(1)(a)) of the person, for each share",
        data_subjects=f"people who share their data with {partner.name}",
        categories=tuple(Category(s, SCOPE_FIELDS.get(s, ())) for s in partner.scopes),
        recipients=(partner.name,),
        retention=("session", "authorization_code", "access_token"),
        role=f"partner: {partner.role}; Sharelock: {ROLE_TEXT.get(partner.role, '?')}",
        notes=(("disabled: asks no more data",) if partner.disabled else ()),
    )
