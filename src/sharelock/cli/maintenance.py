"""`sharelock maintenance`: the credentials people allowed the broker to keep, after a failed
collection, so that engineers can repair a connector (SPEC, "Retention": 120 days at most).

`list` shows what is kept (ids, data source, dates, pseudonymous login hash; never a secret).
`show ID --reason CODE` opens one row in the HSM and prints the credentials, after writing the
audit row of the access (`maintenance_access`, actor `operator`, the id and the reason code): if
that row cannot be written, nothing is shown. `delete ID` erases one row before its expiry (also
audited first); `purge` deletes every row past its expiry, as `sharelock retention run` does.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import Engine

from sharelock.audit import AuditEvent, EventType
from sharelock.broker import OperatorTools
from sharelock.cli.common import OPERATOR, database, friendly_errors, key_layer, out
from sharelock.config import load_settings
from sharelock.flow import CREDENTIAL_MEMBERS
from sharelock.maintenance import (
    KeptCredentials,
    MaintenanceExpired,
    MaintenanceNotFound,
    delete_kept,
    get_kept,
    list_kept,
    purge_expired,
)

app = typer.Typer(
    no_args_is_help=True,
    help="Credentials kept, with the person's consent, to repair connectors (120 days at most).",
)

REASON = re.compile(r"[a-z_]{1,40}")
IdArg = Annotated[str, typer.Argument(help="The maintenance id (mt_…), from 'list'.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _reason(value: str) -> str:
    if not REASON.fullmatch(value):
        raise typer.BadParameter(
            "a short code of a-z and _ (at most 40), e.g. connector_repair", param_hint="--reason"
        )
    return value


def _existing(engine: Engine, maintenance_id: str) -> KeptCredentials:
    kept = get_kept(engine, maintenance_id)
    if kept is None:
        raise MaintenanceNotFound("no kept credentials with that id")
    return kept


def _record(
    tools: OperatorTools, event: EventType, kept: KeptCredentials, outcome: str, reason: str
) -> None:
    tools.trail.record(
        AuditEvent(
            event,
            client_id=kept.client_id,
            data_source=kept.data_source,
            login_hash=kept.login_hash,
            flow_ref=kept.flow_ref,
            outcome=outcome,
            detail_code=reason,
            actor=OPERATOR,
            query=f"maintenance_id={kept.id}",
        )
    )


@app.command("list")
@friendly_errors
def list_command(as_json: JsonOpt = False) -> None:
    """What is kept: ids, data source, partner, dates and login hash (no secret)."""
    with database() as tools:
        rows = list_kept(tools.engine)
    if as_json:
        typer.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        out.print("no credentials kept for maintenance")
        return
    table = Table("id", "data_source", "client_id", "kept (UTC)", "expires (UTC)", "login_hash")
    for row in rows:
        table.add_row(
            row.id,
            row.data_source,
            row.client_id,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.expires_at:%Y-%m-%d %H:%M}",
            row.login_hash,
        )
    out.print(table)


@app.command("show")
@friendly_errors
def show(
    maintenance_id: IdArg,
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why you open them, as a short code (e.g. connector_repair); it is audited.",
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Print the kept credentials, after recording the access in the audit trail."""
    reason = _reason(reason)
    settings = load_settings()
    with database(settings) as tools, key_layer(settings) as keys:
        vault = tools.vault(keys)
        kept = _existing(tools.engine, maintenance_id)
        if kept.expired(datetime.now(UTC)):
            raise MaintenanceExpired("these credentials are past their retention limit")
        # The access is recorded first: if the row cannot be written, nothing is opened.
        _record(tools, EventType.MAINTENANCE_ACCESS, kept, "shown", reason)
        with vault.reveal(maintenance_id) as opened:
            credentials = opened.json_object(CREDENTIAL_MEMBERS)
            try:
                if as_json:
                    typer.echo(json.dumps({**kept.to_json(), **credentials}, indent=2))
                else:
                    typer.echo(f"id           {kept.id}")
                    typer.echo(f"data source  {kept.data_source}")
                    typer.echo(f"expires      {kept.expires_at.isoformat()}")
                    typer.echo(f"login        {credentials['login']}")
                    typer.echo(f"password     {credentials['password']}")
            finally:
                credentials.clear()


@app.command("delete")
@friendly_errors
def delete(
    maintenance_id: IdArg,
    reason: Annotated[
        str, typer.Option("--reason", help="Why, as a short code (e.g. connector_fixed).")
    ] = "connector_fixed",
) -> None:
    """Erase one row before its expiry (e.g. once the connector is repaired); audited first."""
    reason = _reason(reason)
    with database() as tools:
        kept = _existing(tools.engine, maintenance_id)
        _record(tools, EventType.MAINTENANCE_DELETED, kept, "deleted", reason)
        delete_kept(tools.engine, maintenance_id)
    out.print(f"deleted {kept.id}")


@app.command("purge")
@friendly_errors
def purge(as_json: JsonOpt = False) -> None:
    """Delete every row past its expiry (also done by 'sharelock retention run')."""
    with database() as tools:
        removed = purge_expired(tools.engine)
    if as_json:
        typer.echo(json.dumps({"rows_purged": removed}))
        return
    out.print(f"maintenance credentials: removed {removed} past their expiry")
