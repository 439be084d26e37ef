"""What several `sharelock` commands share: the consoles, the error wrapper, and the database
and HSM opened for one command.

This module imports nothing from the other `sharelock.cli` modules: they all import it, and
`sharelock.cli.main` imports them to mount their commands, so nothing needs to import `main`
back (which would be an import cycle).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from sharelock.broker import OperatorTools
from sharelock.config import Settings, load_settings
from sharelock.errors import ConfigError, SharelockError
from sharelock.keys import KeyLayer, is_softhsm

F = TypeVar("F", bound=Callable[..., Any])

# The actor of what an operator does from the command line, in the audit trail.
OPERATOR = "operator"

out = Console()
err = Console(stderr=True)


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


def require_state(settings: Settings, *, db: bool = False, hsm: bool = False) -> None:
    """Stop, in one line, a command that reads existing state when there is none to read.

    The rule (`sharelock --help`): the state directory is `SHARELOCK_STATE_DIR`, or `./var`
    when it is unset. A command that reads state (partners, auditors, audit, keys list and
    rotate, records, retention, maintenance, rights) refuses to start when
    `SHARELOCK_STATE_DIR` is unset and `./var` does not exist, unless nothing it uses lives
    there (a
    `SHARELOCK_DATABASE_URL`, a PIN and SoftHSM configuration given elsewhere): run from
    another folder, it would otherwise make an empty `var/` there and report nothing. An
    explicit `SHARELOCK_STATE_DIR` is always used, and may be new (the commands then make
    what they need). `hsm init`, `keys generate`, `demo` and `serve` create state.
    """
    if "state_dir" in settings.model_fields_set or settings.state_path.is_dir():
        return
    in_state = []
    if db and settings.database_url is None:
        in_state.append("the database")
    if hsm and (
        (settings.hsm_pin is None and settings.hsm_pin_file is None)
        or (settings.softhsm_conf is None and is_softhsm(settings))
    ):
        in_state.append("the HSM PIN and configuration")
    if in_state:
        raise ConfigError(
            f"no state directory: SHARELOCK_STATE_DIR is unset and {settings.state_path} "
            f"does not exist (looked for {' and '.join(in_state)} there); set "
            "SHARELOCK_STATE_DIR, or run from the folder that holds var/"
        )


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner and `message` on stderr while something slow runs (an RSA-4096 key takes
    seconds in SoftHSM); drawn only on a terminal, and erased after: stdout stays the output."""
    if not err.is_terminal:
        yield
        return
    with err.status(escape(message), spinner="dots"):
        yield


@contextmanager
def database(settings: Settings | None = None) -> Iterator[OperatorTools]:
    """The operator's services on the configured database, schema brought up to date
    (`sharelock.broker.OperatorTools`, the composition root's: no command builds one);
    refused when the state it would read is missing (`require_state`)."""
    settings = settings or load_settings()
    require_state(settings, db=True)
    with OperatorTools.open(settings) as tools:
        yield tools


@contextmanager
def key_layer(settings: Settings) -> Iterator[KeyLayer]:
    """The HSM session of one command, closed when it ends; refused when the state it would
    read is missing (`require_state`)."""
    require_state(settings, hsm=True)
    layer = KeyLayer(settings)
    try:
        yield layer
    finally:
        layer.close()
