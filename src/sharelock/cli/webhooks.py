"""`sharelock webhooks`: the webhook queue as the operator sees it, and the replay of dead letters.

`list` shows the events queued to be sent, those waiting for their next attempt (with when)
and the dead letters (retried until the horizon, refused by the partner, or whose partner no
longer has a webhook), by event id: the audit row each comes from. `replay ID…` (or `--all`)
queues dead letters again with a fresh retry horizon; their `jti` is unchanged, so a partner
that did get one before drops it as a duplicate. Both read the broker's Redis
(`SHARELOCK_REDIS_URL`, or the Sentinels or cluster nodes), not the database.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from sharelock.broker import webhook_queue
from sharelock.cli.common import friendly_errors, out
from sharelock.clock import SYSTEM_CLOCK
from sharelock.config import load_settings
from sharelock.errors import ConfigError
from sharelock.webhooks import Event, Listing

app = typer.Typer(no_args_is_help=True, help="Webhooks to partners: the queue and dead letters.")


def _time(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _row(event: Event, state: str, next_at: float | None = None) -> dict[str, Any]:
    return {
        "id": event.id,
        "state": state,
        "type": event.type,
        "client_id": event.client_id,
        "jti": event.jti,
        "occurred_at": event.occurred_at,
        "queued_at": _time(event.queued_at),
        "attempts": event.attempts,
        "last_attempt_at": _time(event.last_attempt_at),
        "last_error": event.last_error,
        "next_attempt_at": _time(next_at),
    }


def _rows(listing: Listing) -> list[dict[str, Any]]:
    return [
        *(_row(event, "queued") for event in listing.queued),
        *(_row(event, "waiting", due) for event, due in listing.waiting),
        *(_row(event, "dead") for event in listing.dead),
    ]


async def _listing() -> Listing:
    async with webhook_queue(load_settings()) as queue:
        return await queue.listing()


async def _replay(ids: list[int] | None) -> list[int]:
    async with webhook_queue(load_settings()) as queue:
        return await queue.replay(ids, SYSTEM_CLOCK.now())


@app.command("list")
@friendly_errors
def list_events(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Pending events (queued, waiting for a retry) and dead letters."""
    rows = _rows(asyncio.run(_listing()))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        out.print("no webhook event pending, no dead letter")
        return
    table = Table()
    for name in ("id", "state", "type", "client_id", "occurred", "attempts", "last error", "next"):
        table.add_column(name, no_wrap=name in ("id", "client_id"))
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["state"],
            row["type"],
            row["client_id"],
            row["occurred_at"],
            str(row["attempts"]),
            row["last_error"] or "-",
            row["next_attempt_at"] or "-",
        )
    out.print(table)


@app.command("replay")
@friendly_errors
def replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Dead letters to send again, by event id.")
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Queue dead letters again (a fresh retry horizon, the same jti)."""
    if replay_all == bool(ids):
        raise ConfigError("name the dead letters to replay by id, or give --all (not both)")
    revived = asyncio.run(_replay(None if replay_all else list(ids or [])))
    missing = sorted(set(ids or []) - set(revived))
    typer.echo(json.dumps({"replayed": revived, "not_dead_letters": missing}, indent=2))
