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
from sharelock.errors import SharelockError
from sharelock.keys import KeyLayer

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


@contextmanager
def database(settings: Settings | None = None) -> Iterator[OperatorTools]:
    """The operator's services on the configured database, schema brought up to date
    (`sharelock.broker.OperatorTools`, the composition root's: no command builds one)."""
    with OperatorTools.open(settings or load_settings()) as tools:
        yield tools


@contextmanager
def key_layer(settings: Settings) -> Iterator[KeyLayer]:
    """The HSM session of one command, closed when it ends."""
    layer = KeyLayer(settings)
    try:
        yield layer
    finally:
        layer.close()
