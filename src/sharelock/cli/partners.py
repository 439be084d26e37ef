"""`sharelock partners`: register partners (online services), list them, rotate secrets.

`add` and `rotate-secret` print the client secret once, in JSON, beside the client id; it is
stored only as its SHA-256 (`sha256:…`) and cannot be shown again. `rotate-secret` is also
how to move a partner registered before that form (an Argon2id hash) off Argon2 at once,
rather than at its next successful authentication. `list` never prints secrets or their
digests. Each command brings the database schema up to date first (idempotent), so they work
on a fresh state directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sharelock.cli.common import database, friendly_errors, out
from sharelock.db import FAPI2_PROFILE, ROLES
from sharelock.registry import InvalidPartner, Partner, PartnerRegistry

app = typer.Typer(no_args_is_help=True, help="Partners (online services) allowed to ask for data.")


@contextmanager
def _registry() -> Iterator[PartnerRegistry]:
    with database() as tools:
        yield tools.partners


def _split(values: list[str]) -> list[str]:
    """Repeated options, each of which may also hold several values separated by spaces or
    commas: `--scope identity --scope "address,phone"`."""
    return [item for value in values for item in re.split(r"[\s,]+", value) if item]


def _public(partner: Partner) -> dict[str, Any]:
    return {
        "client_id": partner.client_id,
        "name": partner.name,
        "redirect_uris": list(partner.redirect_uris),
        "scopes": list(partner.scopes),
        "purpose": partner.purpose,
        "role": partner.role,
        "logo_url": partner.logo_url,
        "home_url": partner.home_url,
        "jwks_uri": partner.jwks_uri,
        "has_jwks": partner.jwks is not None,
        "created_at": partner.created_at.isoformat(),
        "disabled": partner.disabled,
        "par_exempt": partner.par_exempt,
        "identity_verification": partner.identity_verification,
        "dpo_contact": partner.dpo_contact,
        "profile": partner.profile,
        "delivery_format": partner.delivery_format,
        "signed_requests": partner.signed_requests,
        "webhook_url": partner.webhook_url,
    }


def _read_jwks(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidPartner(f"--jwks-file {path}: cannot read it ({exc.strerror})") from None
    except ValueError:
        raise InvalidPartner(f"--jwks-file {path}: not JSON") from None
    if not isinstance(value, dict):
        raise InvalidPartner(f"--jwks-file {path}: must hold a JWK Set object")
    return value


@app.command("add")
@friendly_errors
def add(
    name: Annotated[str, typer.Option(help="Shown to the person on the consent screen.")],
    redirect_uri: Annotated[
        list[str], typer.Option("--redirect-uri", help="Exact redirect URI (repeatable).")
    ],
    scope: Annotated[
        list[str], typer.Option("--scope", help="Allowed scope (repeatable; also 'a b' or 'a,b').")
    ],
    purpose: Annotated[str, typer.Option(help="Why the partner asks for the data.")] = "",
    logo_url: Annotated[str | None, typer.Option("--logo-url")] = None,
    home_url: Annotated[str | None, typer.Option("--home-url")] = None,
    jwks_file: Annotated[
        Path | None, typer.Option("--jwks-file", help="Public JWK Set for private_key_jwt.")
    ] = None,
    jwks_uri: Annotated[str | None, typer.Option("--jwks-uri")] = None,
    role: Annotated[
        str, typer.Option(help=f"GDPR role of the partner: {', '.join(ROLES)}.")
    ] = "controller",
    allow_plain_authorize: Annotated[
        bool,
        typer.Option(
            "--allow-plain-authorize",
            help=(
                "registered as an exception to PAR-required: may send plain /authorize"
                " requests; FAPI 2.0 forbids this, use only for legacy partners"
            ),
        ),
    ] = False,
    identity_verification: Annotated[
        bool,
        typer.Option(
            "--identity-verification",
            help=(
                "the partner's declared purpose includes verifying the person's identity:"
                " only then does Sharelock keep the identity data it shares, 72 h at most,"
                " for that verification (the request step says so)"
            ),
        ),
    ] = False,
    dpo_contact: Annotated[
        str | None,
        typer.Option(
            "--dpo-contact",
            help=(
                "how a person reaches the partner's data-protection officer (an e-mail"
                " address, a URL or a postal address); shown on the rights page"
            ),
        ),
    ] = None,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help=(
                "fapi2: private_key_jwt (PS256, ES256 or EdDSA; needs --jwks-file or"
                " --jwks-uri), DPoP-bound tokens, PAR; basic: client_secret_basic and"
                " bearer tokens, for the sandbox and legacy clients"
            ),
        ),
    ] = FAPI2_PROFILE,
    delivery: Annotated[
        str,
        typer.Option(
            "--delivery",
            help=(
                "how /v1/share answers: json; jws (signed in the HSM, application/jwt); jwe"
                " (that JWS encrypted to the partner's use: enc key in --jwks-file)"
            ),
        ),
    ] = "json",
    require_signed_requests: Annotated[
        bool,
        typer.Option(
            "--require-signed-requests",
            help=(
                "the partner's pushed requests must be signed request objects (JAR, RFC 9101;"
                " FAPI 2.0 Message Signing), verified with its --jwks-file keys"
            ),
        ),
    ] = False,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            help=(
                "where Sharelock pushes signed Security Event Tokens about the partner's shares"
                " (https; http for loopback hosts only); see docs/partner-guide.md, Webhooks"
            ),
        ),
    ] = None,
) -> None:
    """Register a partner; prints its client_id and client_secret (shown only this once)."""
    jwks = _read_jwks(jwks_file)
    with _registry() as registry:
        partner, secret = registry.add(
            name,
            redirect_uri,
            _split(scope),
            purpose=purpose,
            logo_url=logo_url,
            home_url=home_url,
            jwks=jwks,
            jwks_uri=jwks_uri,
            role=role,
            par_exempt=allow_plain_authorize,
            identity_verification=identity_verification,
            dpo_contact=dpo_contact,
            profile=profile,
            delivery_format=delivery,
            signed_requests=require_signed_requests,
            webhook_url=webhook_url,
        )
    payload = {**_public(partner), "client_secret": secret}
    typer.echo(json.dumps(payload, indent=2))


@app.command("list")
@friendly_errors
def list_partners(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Registered partners (never their secrets)."""
    with _registry() as registry:
        partners = registry.list()
    if as_json:
        typer.echo(json.dumps([_public(p) for p in partners], indent=2))
        return
    if not partners:
        out.print("no partner yet: add one with 'sharelock partners add'")
        return
    table = Table()
    table.add_column("client_id", no_wrap=True)
    table.add_column("name")
    table.add_column("scopes")
    table.add_column("redirect URIs", overflow="fold")
    table.add_column("role")
    table.add_column("profile")
    table.add_column("delivery")
    table.add_column("created (UTC)")
    table.add_column("PAR")
    table.add_column("identity kept")
    table.add_column("webhook", overflow="fold")
    table.add_column("status")
    for p in partners:
        table.add_row(
            p.client_id,
            p.name,
            " ".join(p.scopes),
            "\n".join(p.redirect_uris),
            p.role,
            p.profile,
            p.delivery_format,
            p.created_at.strftime("%Y-%m-%d %H:%M"),
            "exempt" if p.par_exempt else "required",
            "72 h, to verify" if p.identity_verification else "no",
            p.webhook_url or "-",
            "disabled" if p.disabled else "active",
        )
    out.print(table)


@app.command("update")
@friendly_errors
def update_partner(
    client_id: Annotated[str, typer.Argument(help="The partner's client_id.")],
    dpo_contact: Annotated[
        str | None,
        typer.Option(
            "--dpo-contact",
            help="how a person reaches the partner's data-protection officer; '' removes it",
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            "--webhook-url",
            help="where the partner's Security Event Tokens go (https); '' removes it",
        ),
    ] = None,
) -> None:
    """Change a partner's data-protection contact (shown on the rights page) or webhook URL."""
    with _registry() as registry:
        partner = registry.update(client_id, dpo_contact=dpo_contact, webhook_url=webhook_url)
    typer.echo(json.dumps(_public(partner), indent=2))


@app.command("rotate-secret")
@friendly_errors
def rotate_secret(
    client_id: Annotated[str, typer.Argument(help="The partner's client_id.")],
) -> None:
    """Give a partner a new client secret and print it (shown only this once); the old one
    stops working at once. Also moves a partner still on a legacy Argon2 hash to SHA-256."""
    with _registry() as registry:
        secret = registry.rotate_secret(client_id)
    typer.echo(json.dumps({"client_id": client_id, "client_secret": secret}, indent=2))
