"""`sharelock records`: the record of processing activities (GDPR Art. 30), from the
configuration in use and, unless `--no-partners`, the partner registry."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sharelock.cli.common import database, friendly_errors
from sharelock.config import load_settings
from sharelock.records import broker_record, partner_record, to_json, to_markdown


@friendly_errors
def records(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown (default).")] = True,
    partners: Annotated[
        bool, typer.Option("--partners/--no-partners", help="Add one entry per partner.")
    ] = True,
) -> None:
    """Print the record of processing activities (GDPR Art. 30), broker and partners."""
    del markdown  # the default; the flag exists so scripts can say what they expect
    settings = load_settings()
    per_partner = []
    if partners:
        with database(settings) as tools:
            per_partner = [partner_record(p) for p in tools.partners.list()]
    broker = broker_record()
    if as_json:
        typer.echo(json.dumps(to_json(broker, per_partner, settings.retention), indent=2))
        return
    typer.echo(to_markdown(broker, per_partner, settings.retention), nl=False)
