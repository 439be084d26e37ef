"""`sharelock rights list`: the requests people made, on `/rights`, that only a partner can
honour (rectification, objection, restriction, erasure or withdrawal for what it received,
forwarding to another controller), with their one-month deadline (GDPR Art. 12(3)).

The table fits 80 columns: reference, partner, right, deadline, status (`overdue` when still
open past its deadline). `--json` gives every column, never the person's pseudonym.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from sharelock.cli.common import database, friendly_errors, out
from sharelock.rights import RightsRequest, list_requests, overdue

app = typer.Typer(
    no_args_is_help=True,
    help="People's rights requests forwarded to partners, and their deadlines.",
)


def _status(request: RightsRequest, now: datetime) -> str:
    return "overdue" if request.overdue(now) else request.status


@app.command("list")
@friendly_errors
def list_command(
    only_overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open requests past their deadline.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rights requests, the nearest deadline first."""
    now = datetime.now(UTC)
    with database() as tools:
        found = overdue(tools.engine, now) if only_overdue else list_requests(tools.engine)
    if as_json:
        typer.echo(
            json.dumps(
                [{**r.for_person(), "overdue": r.overdue(now)} for r in found],
                indent=2,
            )
        )
        return
    if not found:
        out.print("no overdue rights request" if only_overdue else "no rights request yet")
        return
    table = Table()
    table.add_column("reference", no_wrap=True)
    table.add_column("partner", overflow="fold")
    table.add_column("right", no_wrap=True)
    table.add_column("deadline (UTC)", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for request in found:
        table.add_row(
            request.reference,
            request.client_id,
            request.kind,
            f"{request.deadline:%Y-%m-%d}",
            _status(request, now),
        )
    out.print(table)
