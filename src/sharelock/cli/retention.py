"""`sharelock retention run`: remove what has outlived its limit, and say what was removed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sharelock.cli.common import database, friendly_errors, key_layer, out, working
from sharelock.config import load_settings
from sharelock.retention import run_retention

app = typer.Typer(no_args_is_help=True, help="Enforce the retention limits (SPEC, Retention).")


@app.command("run")
@friendly_errors
def run(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Purge audit rows older than the audit_trace limit, maintenance credentials past
    their expiry and accounts unused too long, sign a checkpoint; idempotent."""
    settings = load_settings()
    with (
        database(settings) as tools,
        key_layer(settings) as keys,
        working("purging what is past its retention, signing a checkpoint …"),
    ):
        report = run_retention(
            tools.engine, keys, retention=settings.retention, issuer=settings.issuer
        )
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
        return
    if report.audit_rows_purged:
        out.print(
            f"audit trace: removed {report.audit_rows_purged} rows "
            f"(ids {report.purged_from_id} to {report.purged_through_id}), "
            f"older than {report.audit_cutoff:%Y-%m-%d %H:%M:%S} UTC"
        )
    else:
        out.print(f"audit trace: nothing older than {report.audit_cutoff:%Y-%m-%d %H:%M:%S} UTC")
    out.print(
        f"maintenance credentials: removed {report.maintenance_rows_purged} past their expiry"
    )
    out.print(f"accounts: removed {report.accounts_purged} unused for too long")
    out.print(f"checkpoint {report.checkpoint.id} signed (head row {report.checkpoint.last_id})")
    for limit in report.limits:
        if limit["name"] != "audit_trace":
            out.print(f"{limit['name']}: {limit['enforced_by']}")
