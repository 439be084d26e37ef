"""`sharelock audit`: the operator-side auditor tools, straight on the database and the HSM.

`hash` gives the keyed hash of a login (asked without echo unless `--login` is given, so it
stays out of the shell history; read from standard input, one line, when that is not a
terminal); `search` and `export` read the trail by the same filters as `GET /audit/traces`;
`search` prints a table when the terminal is wide enough and one block per row otherwise,
hashes shortened to a recognisable prefix (`--json` and `export` give them whole); `verify`
checks the chain and its signed checkpoints and exits 1 if anything is wrong; `checkpoint`
signs the chain's current state. Each question is written to the trail first
(`auditor_query`, actor `operator`): if it cannot be, there is no answer.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sharelock.audit import (
    FORMATS,
    AuditRecord,
    Checkpointer,
    ExportFormat,
    QueryKind,
    TraceFilters,
    auditor_query_event,
    count_matching,
    export_lines,
    iter_matching,
    login_hash_input,
    search_filtered,
    verify_trail,
)
from sharelock.broker import OperatorTools
from sharelock.cli.common import OPERATOR, database, err, friendly_errors, key_layer, out
from sharelock.config import load_settings
from sharelock.keys import KeyLayer, KeyNotFound

app = typer.Typer(no_args_is_help=True, help="Search, export and verify the audit trail.")


def _record_query(
    tools: OperatorTools,
    kind: QueryKind,
    filters: TraceFilters | None = None,
    **extra: str | int,
) -> None:
    tools.trail.record(auditor_query_event(OPERATOR, kind, filters, **extra))


def progress_bar(label: str) -> Progress:
    """A bar on stderr (stdout stays clean for the output); drawn only on a terminal."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


LoginHashOpt = Annotated[str | None, typer.Option("--login-hash", help="hmac-sha256:<hex>")]
ClientOpt = Annotated[str | None, typer.Option("--client-id", help="Partner's client id.")]
SourceOpt = Annotated[str | None, typer.Option("--data-source", help="Data source id.")]
SinceOpt = Annotated[str | None, typer.Option(help="From (inclusive): YYYY-MM-DD or ISO time.")]
UntilOpt = Annotated[str | None, typer.Option(help="Until (exclusive): YYYY-MM-DD or ISO time.")]


@app.command("hash")
@friendly_errors
def hash_login(
    data_source: Annotated[str, typer.Option("--data-source", help="Data source id.")],
    login: Annotated[
        str | None, typer.Option(help="The login; asked without echo if left out.")
    ] = None,
) -> None:
    """The keyed hash the trail holds for a login at a data source."""
    if login is None:
        login = _ask_login()
    message = login_hash_input(data_source, login)
    settings = load_settings()
    with database(settings) as tools, key_layer(settings) as keys:
        digest = keys.keyed_hash(message)
        _record_query(tools, "hash", TraceFilters(login_hash=digest, data_source=data_source))
    typer.echo(digest)


def _ask_login() -> str:
    """The login, never echoed: asked on a terminal, else the first line of standard input
    (getpass would warn, or read the terminal instead of the pipe)."""
    if sys.stdin is not None and sys.stdin.isatty():
        return str(typer.prompt("login", hide_input=True))
    line = sys.stdin.readline() if sys.stdin is not None else ""
    login = line.rstrip("\r\n")
    if not login:
        raise typer.BadParameter("no login on standard input", param_hint="--login")
    return login


# A hash in the table: its algorithm and 8 hex digits, enough to tell rows apart by eye.
SHORT_HASH_HEX = 8


def short_hash(value: str | None) -> str:
    """`hmac-sha256:1a2b3c4d…` for `hmac-sha256:1a2b3c4d<56 more>`; other values as they are."""
    if not value:
        return ""
    algorithm, colon, digest = value.rpartition(":")
    if not colon or len(digest) <= SHORT_HASH_HEX:
        return value
    return f"{algorithm}:{digest[:SHORT_HASH_HEX]}…"


TRACE_FIELDS = ("client_id", "data_source", "outcome", "login_hash")


def _trace_values(row: AuditRecord) -> dict[str, str]:
    return {
        "client_id": row.client_id or "",
        "data_source": row.data_source or "",
        "outcome": row.outcome or "",
        "login_hash": short_hash(row.login_hash),
    }


def _trace_table(rows: list[AuditRecord]) -> Table:
    table = Table()
    for name in ("id", "at (UTC)", "event", *TRACE_FIELDS):
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(
            str(row.id),
            row.at.strftime("%Y-%m-%d %H:%M:%S"),
            Text(row.event),
            *(Text(value) for value in _trace_values(row).values()),
        )
    return table


def _print_traces(rows: list[AuditRecord]) -> None:
    """A table if it fits the terminal whole, else one block per row: never a cell cut to
    `hmac-sha…`."""
    table = _trace_table(rows)
    unbounded = out.options.update_width(1_000_000)  # its natural width, not clamped to ours
    if Measurement.get(out, unbounded, table).maximum <= out.width:
        out.print(table)
        return
    width = max(len(name) for name in TRACE_FIELDS)
    for number, row in enumerate(rows):
        if number:
            out.print()
        heading = Text.assemble(
            (f"#{row.id}", "bold"), f"  {row.at:%Y-%m-%d %H:%M:%S}  ", (row.event, "bold")
        )
        out.print(heading)
        for name, value in _trace_values(row).items():
            if value:
                out.print(Text(f"  {name:<{width}}  {value}"))


@app.command("search")
@friendly_errors
def search_traces(
    login_hash: LoginHashOpt = None,
    client_id: ClientOpt = None,
    data_source: SourceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rows matching every filter, oldest first (one page)."""
    filters = TraceFilters.parse(
        login_hash=login_hash,
        client_id=client_id,
        data_source=data_source,
        since=since,
        until=until,
    )
    with database() as tools:
        _record_query(tools, "traces", filters, limit=limit, offset=offset)
        rows = search_filtered(tools.engine, filters, limit=limit, offset=offset)
    if as_json:
        typer.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    if not rows:
        out.print("no matching trace")
        return
    _print_traces(rows)


@app.command("export")
@friendly_errors
def export(
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    login_hash: LoginHashOpt = None,
    client_id: ClientOpt = None,
    data_source: SourceOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Every matching row, as CSV or JSON lines, hashes included (re-checkable offline)."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    chosen: ExportFormat = "csv" if fmt == "csv" else "jsonl"
    filters = TraceFilters.parse(
        login_hash=login_hash,
        client_id=client_id,
        data_source=data_source,
        since=since,
        until=until,
    )
    with database() as tools:
        _record_query(tools, "export", filters, format=chosen)
        total = count_matching(tools.engine, filters)
        with (
            progress_bar("exporting") as bar,
            _opened(output) as sink,
        ):
            task = bar.add_task("export", total=total)
            for line in export_lines(
                _counted(iter_matching(tools.engine, filters), bar, task), chosen
            ):
                sink.write(line)
    if output is not None:
        err.print(f"wrote {total} rows to {output}")


def _counted(rows: Iterator[Any], bar: Progress, task: Any) -> Iterator[Any]:
    for row in rows:
        yield row
        bar.advance(task)


@contextmanager
def _opened(output: Path | None) -> Iterator[Any]:
    if output is None:
        yield sys.stdout
        with suppress(BrokenPipeError):
            sys.stdout.flush()
        return
    with output.open("w", encoding="utf-8", newline="") as handle:
        yield handle


def signature_keyring(keys: KeyLayer) -> dict[str, dict[str, Any]] | None:
    """Every signing key the token holds (retired ones too), or None if it has none."""
    try:
        return keys.signature_keyring() or None
    except KeyNotFound:
        return None


@app.command("verify")
@friendly_errors
def verify(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check the chain and its signed checkpoints; exit 1 if anything was tampered with."""
    settings = load_settings()
    with database(settings) as tools, key_layer(settings) as keys:
        _record_query(tools, "verify")
        jwk = signature_keyring(keys)
        with progress_bar("verifying") as bar:
            task = bar.add_task("verify", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = verify_trail(tools.engine, jwk, advance)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        chain = report.chain
        out.print(
            f"rows checked {chain.rows_checked} (ids {report.anchor_id + 1} to {chain.last_id}), "
            f"checkpoints {report.checkpoints_checked}, "
            f"signed through row {report.attested_through}"
        )
        for problem in report.problems:
            out.print(f"[bold red]TAMPERED[/] {problem.reason}: {problem.message}")
        if report.ok:
            out.print("[bold green]trail intact[/]")
    if not report.ok:
        raise typer.Exit(1)


@app.command("checkpoint")
@friendly_errors
def checkpoint() -> None:
    """Sign the chain's current head with the HSM's signing key (prints the checkpoint)."""
    settings = load_settings()
    with database(settings) as tools, key_layer(settings) as keys:
        made = Checkpointer(tools.engine, keys, settings.issuer).checkpoint("manual")
    typer.echo(json.dumps(made.to_json(), indent=2))
