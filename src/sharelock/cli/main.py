"""`sharelock`: one program for operators, partners' developers and the demo."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sharelock.cli.audit import app as audit_app
from sharelock.cli.auditors import app as auditors_app
from sharelock.cli.maintenance import app as maintenance_app
from sharelock.cli.partners import app as partners_app
from sharelock.cli.records import records as records_command
from sharelock.cli.retention import app as retention_app
from sharelock.config import Settings, load_settings
from sharelock.errors import SharelockError
from sharelock.keys import KeyLayer, init_token

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
hsm_app = typer.Typer(no_args_is_help=True, help="The embedded SoftHSM2 token.")
keys_app = typer.Typer(no_args_is_help=True, help="Keys in the HSM.")
app.add_typer(hsm_app, name="hsm")
app.add_typer(keys_app, name="keys")
app.add_typer(partners_app, name="partners")
app.add_typer(audit_app, name="audit")
app.add_typer(auditors_app, name="auditors")
app.add_typer(retention_app, name="retention")
app.add_typer(maintenance_app, name="maintenance")
app.command("records")(records_command)

err = Console(stderr=True)
out = Console()


def friendly_errors(fn: F) -> F:
    """Print Sharelock's typed errors as one line and exit 2, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SharelockError as exc:
            # Escaped: the message names paths and labels, which rich would read as markup
            # (a '[/x]' in a token label crashed here with a traceback); never wrapped, so it
            # stays one line for logs and scripts.
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    return load_settings()


@hsm_app.command("init")
@friendly_errors
def hsm_init() -> None:
    """Create the SoftHSM2 token (configuration, PIN files, token); idempotent."""
    report = init_token(_settings())
    state = "created" if report.created else "already present"
    out.print(f"token {report.token_label!r} {state} (SOFTHSM2_CONF={report.conf_path})")


@keys_app.command("generate")
@friendly_errors
def keys_generate() -> None:
    """Create the keys the token lacks (encryption pair, audit HMAC key, storage key)."""
    layer = KeyLayer(_settings())
    try:
        report = layer.ensure_keys()
        for name in report.created:
            out.print(f"created  {name}")
        for name in report.existing:
            out.print(f"exists   {name}")
        out.print(f"active kid {layer.active_key().kid}")
    finally:
        layer.close()


@keys_app.command("list")
@friendly_errors
def keys_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The encryption keys in the token, with their state and protection."""
    layer = KeyLayer(_settings())
    try:
        keys = layer.encryption_keys()
        algs = ",".join(layer.algorithms()) if keys else ""
        protection = {k.kid: layer.key_protection(k) for k in keys}
    finally:
        layer.close()
    if as_json:
        rows = [
            {
                "kid": k.kid,
                "status": k.status,
                "created_at": k.created_at.isoformat(),
                "destroy_after": k.destroy_after.isoformat() if k.destroy_after else None,
                "bits": k.modulus_bits,
                "algorithms": algs.split(","),
                **protection[k.kid],
            }
            for k in keys
        ]
        out.print_json(json.dumps(rows))
        return
    if not keys:
        out.print("no encryption key: run 'sharelock keys generate'")
        return
    table = Table("kid", "status", "created (UTC)", "destroy after", "key", "in the HSM")
    for k in keys:
        flags = protection[k.kid]
        table.add_row(
            k.kid,
            k.status,
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.destroy_after.strftime("%Y-%m-%d %H:%M") if k.destroy_after else "-",
            f"RSA-{k.modulus_bits} {algs}",
            "sensitive" if flags["sensitive"] and not flags["extractable"] else "EXPORTABLE",
        )
    out.print(table)


@keys_app.command("rotate")
@friendly_errors
def keys_rotate() -> None:
    """Make a new active encryption key; destroy keys past their grace period."""
    layer = KeyLayer(_settings())
    try:
        active, destroyed = layer.rotate()
    finally:
        layer.close()
    out.print(f"active kid {active.kid}")
    for key in destroyed:
        out.print(f"destroyed {key.kid} (grace period over)")


@app.command()
@friendly_errors
def serve(
    workers: int = typer.Option(1, min=1, help="Worker processes (each opens the HSM itself)."),
) -> None:
    """Run the broker's HTTP API (with a private redis-server if SHARELOCK_REDIS_URL is unset)."""
    import uvicorn

    from sharelock.demo.run import prepare
    from sharelock.embedded import redis_url_for

    settings = _settings()
    KeyLayer(settings).check()  # a clear error now rather than a 503 later
    prepare(settings)
    with redis_url_for(settings) as redis_url:
        # Workers are separate processes that read their settings from the environment.
        os.environ["SHARELOCK_REDIS_URL"] = redis_url
        uvicorn.run(
            "sharelock.web.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="info",
        )


@app.command()
@friendly_errors
def sandbox(
    slow_seconds: float = typer.Option(30.0, help="Delay of the 'slow' test users."),
) -> None:
    """Run the sandbox data sources (bank, telecom, energy, tax office)."""
    from sharelock.sandbox.app import run_sandbox

    settings = _settings()
    out.print(f"sandbox data sources on {settings.sandbox_url} (see docs/sandbox.md)")
    run_sandbox("127.0.0.1", settings.sandbox_port, slow_seconds=slow_seconds)


def _print_ready(settings: Settings, partner: Any) -> None:
    demo_url = f"http://127.0.0.1:{settings.demo_partner_port}/"
    out.print()
    out.print("[bold]Sharelock demo is running.[/]")
    out.print(f"  Start a share as a partner's user would:  [bold]{demo_url}[/]")
    out.print(f"  Broker:                                   {settings.issuer}")
    out.print(f"  Sandbox data sources:                     {settings.sandbox_url}")
    out.print("  Test user at the bank: alice / alice-pass (bob / bob-pass asks for 123456)")
    out.print("Stop with Ctrl-C.")


@app.command()
@friendly_errors
def demo(
    headless: bool = typer.Option(
        False, "--headless", help="Run one whole share through the HTTP API, print the result."
    ),
) -> None:
    """Run everything on the embedded default and print where to point a browser."""
    from sharelock.demo.run import run_demo

    settings = _settings()
    result = run_demo(settings, headless=headless, on_ready=_print_ready)
    if result is not None:
        out.print_json(json.dumps({"received": result.received, "steps_ms": result.steps_ms}))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
