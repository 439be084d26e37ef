"""`sharelock records`: the record of processing activities (GDPR Art. 30), from the
configuration in use and, unless `--no-partners`, the partner registry.

The Markdown names the command that generated it; it names the options this run was given,
and no other (`docs/privacy.md` is the output of `sharelock records --markdown --no-partners`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sharelock.cli.common import database, friendly_errors
from sharelock.config import load_settings
from sharelock.records import broker_record, partner_record, to_json, to_markdown

# How `sharelock.records.render.HEADER` names the command that generated it.
GENERATED_BY = "`sharelock records --markdown --no-partners`"


def _given(ctx: typer.Context, name: str) -> bool:
    # By name: typer has its own copy of click, whose enum is not `click.core`'s.
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _command_line(ctx: typer.Context, *, partners: bool) -> str:
    """`sharelock records` with the options of this run, as they were given."""
    words = ["sharelock", "records"]
    if _given(ctx, "markdown"):
        words.append("--markdown")
    if _given(ctx, "partners"):
        words.append("--partners" if partners else "--no-partners")
    return f"`{' '.join(words)}`"


@friendly_errors
def records(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print Markdown (the default).", show_default=False)
    ] = False,
    partners: Annotated[
        bool, typer.Option("--partners/--no-partners", help="Add one entry per partner.")
    ] = True,
) -> None:
    """Print the record of processing activities (GDPR Art. 30), broker and partners."""
    if as_json and markdown:
        raise typer.BadParameter("give --json or --markdown, not both", param_hint="--json")
    settings = load_settings()
    per_partner = []
    if partners:
        with database(settings) as tools:
            per_partner = [partner_record(p) for p in tools.partners.list()]
    broker = broker_record()
    if as_json:
        typer.echo(json.dumps(to_json(broker, per_partner, settings.retention), indent=2))
        return
    text = to_markdown(broker, per_partner, settings.retention)
    text = text.replace(GENERATED_BY, _command_line(ctx, partners=partners), 1)
    typer.echo(text, nl=False)
