"""`sharelock`: one program for operators, partners' developers and the demo."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import ssl
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from sharelock.cli.audit import app as audit_app
from sharelock.cli.auditors import app as auditors_app
from sharelock.cli.common import friendly_errors, key_layer, out, working
from sharelock.cli.maintenance import app as maintenance_app
from sharelock.cli.partners import app as partners_app
from sharelock.cli.records import records as records_command
from sharelock.cli.retention import app as retention_app
from sharelock.cli.rights import app as rights_app
from sharelock.cli.webhooks import app as webhooks_app
from sharelock.config import Settings, load_settings
from sharelock.errors import ConfigError
from sharelock.keys import KeyLayer, SigningKey, init_token

# Said in `sharelock --help`; enforced by `sharelock.cli.common.require_state`.
STATE_RULE = (
    "State (SoftHSM token, PIN files, SQLite database) is kept in SHARELOCK_STATE_DIR, or in "
    "./var when it is unset. Commands that read state (partners, auditors, audit, keys list "
    "and rotate, records, retention, maintenance, rights) stop with an error when "
    "SHARELOCK_STATE_DIR is unset and ./var does not exist (unless what they read is set "
    "elsewhere, such as "
    "SHARELOCK_DATABASE_URL), rather than start an empty one there: set "
    "SHARELOCK_STATE_DIR, or run from the folder that holds var/. hsm init, keys generate, "
    "demo and serve create the state they need."
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=f"{__doc__}\n\n{STATE_RULE}")
hsm_app = typer.Typer(no_args_is_help=True, help="The embedded SoftHSM2 token.")
keys_app = typer.Typer(no_args_is_help=True, help="Keys in the HSM.")
app.add_typer(hsm_app, name="hsm")
app.add_typer(keys_app, name="keys")
app.add_typer(partners_app, name="partners")
app.add_typer(audit_app, name="audit")
app.add_typer(auditors_app, name="auditors")
app.add_typer(retention_app, name="retention")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(rights_app, name="rights")
app.add_typer(webhooks_app, name="webhooks")
app.command("records")(records_command)

log = logging.getLogger("sharelock.serve")
STARTUP_FAILURE = 3  # uvicorn's exit code when the app does not start


@hsm_app.command("init")
@friendly_errors
def hsm_init() -> None:
    """Create the SoftHSM2 token (configuration, PIN files, token); idempotent."""
    with working("creating the SoftHSM token …"):
        report = init_token(load_settings())
    state = "created" if report.created else "already present"
    out.print(f"token {report.token_label!r} {state} (SOFTHSM2_CONF={report.conf_path})")


@keys_app.command("generate")
@friendly_errors
def keys_generate() -> None:
    """Create the keys the token lacks (encryption pair, audit HMAC key, storage key)."""
    layer = KeyLayer(load_settings())
    try:
        with working("creating the missing keys in the HSM (RSA-4096: a few seconds) …"):
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
    """The encryption and signing keys in the token, with their state and protection."""
    with key_layer(load_settings()) as layer:
        keys = layer.encryption_keys()
        algs = ",".join(layer.algorithms()) if keys else ""
        protection = {k.kid: layer.key_protection(k) for k in keys}
        signing = layer.signing_keys()
        grace = layer.grace_period
    if as_json:
        rows = [
            {
                "kid": k.kid,
                "use": "enc",
                "status": k.status,
                "created_at": k.created_at.isoformat(),
                "destroy_after": k.destroy_after.isoformat() if k.destroy_after else None,
                "bits": k.modulus_bits,
                "algorithms": algs.split(","),
                **protection[k.kid],
            }
            for k in keys
        ] + [_signing_row(k, grace) for k in signing]
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
    for sk in signing:
        row = _signing_row(sk, grace)
        table.add_row(
            sk.kid,
            sk.status,
            sk.created_at.strftime("%Y-%m-%d %H:%M") if sk.created_at.year > 1970 else "-",
            row["private_until"][:16].replace("T", " ") if row["private_until"] else "-",
            "EC P-256 ES256 (sign)",
            "private + public" if sk.has_private else "public only",
        )
    out.print(table)


def _signing_row(key: SigningKey, grace: timedelta) -> dict[str, Any]:
    until = key.private_until(grace)
    return {
        "kid": key.kid,
        "use": "sig",
        "status": key.status,
        "created_at": key.created_at.isoformat() if key.created_at.year > 1970 else None,
        "retired_at": key.retired_at.isoformat() if key.retired_at else None,
        "private_until": until.isoformat() if until else None,
        "has_private": key.has_private,
        "published": key.published,
    }


@keys_app.command("rotate")
@friendly_errors
def keys_rotate(
    signing: bool = typer.Option(
        False,
        "--signing",
        help="Rotate the ES256 signing key instead of the encryption key.",
    ),
) -> None:
    """Make a new active encryption key (or, with --signing, signing key); destroy what is
    past its grace period."""
    if signing:
        with key_layer(load_settings()) as layer, working("generating a new P-256 key …"):
            new, retired = layer.rotate_signing()
        out.print(f"active signing kid {new.kid}")
        for key in retired:
            out.print(f"retired {key.kid}: private half destroyed, public half kept")
        return
    with (
        key_layer(load_settings()) as layer,
        working("generating a new RSA-4096 key in the HSM (a few seconds) …"),
    ):
        active, destroyed = layer.rotate()
    out.print(f"active kid {active.kid}")
    for enc in destroyed:
        out.print(f"destroyed {enc.kid} (grace period over)")


def _listen(host: str, port: int, variable: str) -> socket.socket:
    """A socket bound the way uvicorn binds one (IPv6 if the host is), before any worker
    starts: every worker then serves the same sockets."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{variable}: cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


@app.command()
@friendly_errors
def serve(
    workers: int = typer.Option(1, min=1, help="Worker processes (each opens the HSM itself)."),
) -> None:
    """Run the broker's HTTP API, and /metrics on the operator listener (with a private
    redis-server if neither SHARELOCK_REDIS_URL nor SHARELOCK_REDIS_SENTINELS is set)."""
    settings = load_settings()
    # Before anything imports prometheus-client, which reads it once: every worker then keeps
    # its metrics in a file there, and a scrape adds up all workers (`sharelock.web.metrics`).
    metrics_dir = _fresh_metrics_dir(settings)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from sharelock.demo import prepare
    from sharelock.embedded import redis_url_for
    from sharelock.logs import configure_logging, logging_config
    from sharelock.store import RedisEndpoint, verify_redis

    if settings.operator_port == settings.port:
        raise ConfigError("SHARELOCK_OPERATOR_PORT: must differ from SHARELOCK_PORT")
    KeyLayer(settings).check()  # a clear error now rather than a 503 later
    tls = _tls_options(settings)  # likewise: not a traceback in every worker
    # Both listeners are bound here and handed to uvicorn, which serves both in each worker
    # (`sharelock.web.app.Listeners` tells them apart by local port), as `uvicorn.run` does
    # with its one socket.
    sockets = [_listen(settings.host, settings.port, "SHARELOCK_PORT")]
    try:
        sockets.append(
            _listen(settings.operator_host, settings.operator_port, "SHARELOCK_OPERATOR_PORT")
        )
        # Only now, so that a start-up error above stays one plain line.
        configure_logging(settings)
        prepare(settings)
        with redis_url_for(settings) as redis_url:
            # Workers are separate processes that read their settings from the environment.
            if redis_url is not None:  # None: Sentinels or a cluster, read by workers as here
                os.environ["SHARELOCK_REDIS_URL"] = redis_url
            # Wrong Sentinels, service, credentials or certificates: one line, now, rather
            # than a traceback in each worker.
            verify_redis(
                RedisEndpoint.from_settings(
                    settings.model_copy(update={"redis_url": redis_url})
                    if redis_url is not None
                    else settings
                )
            )
            config = uvicorn.Config(
                "sharelock.web.app:create_listeners_from_env",
                factory=True,
                workers=workers,
                lifespan="on",
                # JSON lines in every worker; uvicorn's access log is off (it writes the raw
                # request line, query string included): `sharelock.access` replaces it.
                log_config=logging_config(settings),
                log_level=settings.log_level.lower(),
                access_log=False,
                **tls,
            )
            log.info(
                "serving the API on %s:%d and the operator listener on %s:%d, %d worker(s)",
                settings.host,
                settings.port,
                settings.operator_host,
                settings.operator_port,
                workers,
            )
            if workers > 1:
                Multiprocess(config, sockets=sockets).run()
            else:
                server = uvicorn.Server(config)
                server.run(sockets=sockets)
                if not server.started:
                    raise typer.Exit(STARTUP_FAILURE)
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


# The TLS 1.2 suites `serve` accepts: forward secrecy and AEAD only (TLS 1.3's own suites all
# are). None of them exists before TLS 1.2, so TLS 1.0 and 1.1 cannot be negotiated whatever
# the OpenSSL build allows; Python's default minimum is TLS 1.2 besides.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS arguments, or none. The files are loaded once here, so that a wrong path
    or a key that does not match its certificate stops `serve` with one line.

    uvicorn applies one TLS setting to every socket of a server, and `serve` runs both
    listeners in one server (every worker serves both), so the operator listener answers
    HTTPS too, with the same certificate: scrape and probe it with `https://` and the CA."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None or key is None:  # both or neither: `Settings` checked
        return {}
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError:  # before OSError, its base class
        raise ConfigError(
            "SHARELOCK_TLS_CERT_FILE, SHARELOCK_TLS_KEY_FILE: not a PEM certificate and its "
            "matching private key"
        ) from None
    except OSError as exc:
        raise ConfigError(
            "SHARELOCK_TLS_CERT_FILE, SHARELOCK_TLS_KEY_FILE: cannot read the certificate or "
            f"its key ({exc.strerror or type(exc).__name__})"
        ) from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "ssl_ciphers": TLS12_CIPHERS}


def _fresh_metrics_dir(settings: Settings) -> Path:
    """An empty directory for this run's metrics: values of an earlier run must not be
    added to this one's."""
    path = settings.state_path / "metrics" / str(os.getpid())
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    return path


@app.command()
@friendly_errors
def sandbox(
    slow_seconds: float = typer.Option(30.0, help="Delay of the 'slow' test users."),
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on (0.0.0.0 in a container, for the brokers)."
    ),
) -> None:
    """Run the sandbox data sources (bank, telecom, energy, tax office)."""
    from sharelock.sandbox import run_sandbox

    settings = load_settings()
    out.print(f"sandbox data sources on {settings.sandbox_url} (see docs/sandbox.md)")
    run_sandbox(host, settings.sandbox_port, slow_seconds=slow_seconds)


def _print_ready(settings: Settings, partner: Any) -> None:
    demo_url = f"http://127.0.0.1:{settings.demo_partner_port}/"
    out.print()
    out.print("[bold]Sharelock demo is running.[/]")
    out.print(f"  Start a share as a partner's user would:  [bold]{demo_url}[/]")
    out.print(f"  Broker:                                   {settings.issuer}")
    out.print(f"  Sandbox data sources:                     {settings.sandbox_url}")
    out.print(
        f"  Demo Shop's webhook events (SETs):        {settings.sandbox_url}/webhooks/demo-shop"
    )
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
    from sharelock.demo import run_demo
    from sharelock.logs import configure_logging

    settings = load_settings()
    configure_logging(settings)  # JSON lines on stderr; what is printed here stays on stdout
    result = run_demo(settings, headless=headless, on_ready=_print_ready)
    if result is not None:
        out.print_json(json.dumps({"received": result.received, "steps_ms": result.steps_ms}))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
