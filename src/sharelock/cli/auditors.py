"""`sharelock auditors`: give auditors a bearer token, list them, revoke them.

`add` prints the token once, in JSON; only its SHA-256 is stored. Adding and revoking are
written to the audit trail first (actor `operator`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sharelock.auditors import Auditor
from sharelock.cli.common import database, friendly_errors, out

app = typer.Typer(no_args_is_help=True, help="Auditors' bearer tokens for the /audit API.")


def _public(auditor: Auditor) -> dict[str, Any]:
    return {
        "auditor_id": auditor.auditor_id,
        "name": auditor.name,
        "created_at": auditor.created_at.isoformat(),
        "revoked_at": auditor.revoked_at.isoformat() if auditor.revoked_at else None,
    }


@app.command("add")
@friendly_errors
def add(name: Annotated[str, typer.Option(help="Who the auditor is (shown in lists).")]) -> None:
    """Add an auditor; prints its bearer token (shown only this once)."""
    with database() as tools:
        auditor, token = tools.auditors.add(name)
    typer.echo(json.dumps({**_public(auditor), "token": token}, indent=2))


@app.command("list")
@friendly_errors
def list_auditors(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Auditors, active and revoked (never their tokens)."""
    with database() as tools:
        auditors = tools.auditors.list()
    if as_json:
        typer.echo(json.dumps([_public(a) for a in auditors], indent=2))
        return
    if not auditors:
        out.print("no auditor yet: add one with 'sharelock auditors add --name NAME'")
        return
    table = Table("auditor_id", "name", "created (UTC)", "status")
    for a in auditors:
        status = "active" if a.active else f"revoked {a.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(a.auditor_id, a.name, f"{a.created_at:%Y-%m-%d %H:%M}", status)
    out.print(table)


@app.command("revoke")
@friendly_errors
def revoke(auditor_id: Annotated[str, typer.Argument(help="The auditor's id (au_…).")]) -> None:
    """Revoke an auditor's token at once (its past queries stay in the trail)."""
    with database() as tools:
        auditor = tools.auditors.revoke(auditor_id)
    typer.echo(json.dumps(_public(auditor), indent=2))
