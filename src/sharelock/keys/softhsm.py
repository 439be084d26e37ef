"""Idempotent initialisation of the embedded SoftHSM2 token (`sharelock hsm init`).

A production HSM is initialised with its vendor's tools; this module only serves the embedded
setup and the tests. PINs come from the environment or are generated into owner-only files, and
reach `softhsm2-util` through a pseudo-terminal, never its command line (which any local user
could read in /proc).
"""

from __future__ import annotations

import os
import pty
import re
import secrets
import select
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sharelock.config import Settings
from sharelock.errors import ConfigError

_PIN_BYTES = 24
_TOOL_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class InitReport:
    conf_path: Path
    token_label: str
    created: bool


def is_softhsm(settings: Settings) -> bool:
    return "softhsm" in settings.pkcs11_module.name.lower()


def export_softhsm_conf(settings: Settings) -> None:
    """Point SoftHSM at our configuration; must happen before the module is first loaded."""
    if is_softhsm(settings):
        conf = settings.softhsm_conf_path
        if not conf.is_file():
            # Without this check SoftHSM's C_Initialize fails and the error blamed the module.
            raise ConfigError(
                f"SHARELOCK_SOFTHSM_CONF: no SoftHSM2 configuration at {conf} "
                "(run 'sharelock hsm init', or point SHARELOCK_SOFTHSM_CONF at one)"
            )
        os.environ["SOFTHSM2_CONF"] = str(conf)


def _write_secret_file(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


def _pin(env_value: str | None, path: Path) -> str:
    if env_value is not None:
        return env_value
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_urlsafe(_PIN_BYTES)
    _write_secret_file(path, value)
    return value


def _tool() -> str:
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise ConfigError("softhsm2-util not found: install the 'softhsm2' package")
    return tool


def _token_labels(env: dict[str, str]) -> list[str]:
    shown = subprocess.run(
        [_tool(), "--show-slots"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=_TOOL_TIMEOUT_S,
    )
    if shown.returncode != 0:
        raise ConfigError(f"softhsm2-util --show-slots failed (exit {shown.returncode})")
    return [m.strip() for m in re.findall(r"^\s*Label:\s*(.*)$", shown.stdout, re.MULTILINE)]


def _run_with_tty(argv: list[str], answers: list[str], env: dict[str, str]) -> int:
    """Run a program that reads its PINs from the terminal, answering each prompt in turn."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(argv[0], argv, env)  # noqa: S606 (argv is fixed, no shell)
    pending = list(answers)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], _TOOL_TIMEOUT_S)
            if not ready:
                os.kill(pid, 9)
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen = (seen + chunk)[-256:]
            if pending and seen.rstrip().endswith(b":"):
                os.write(fd, pending.pop(0).encode() + b"\n")
                seen = b""
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def init_token(settings: Settings) -> InitReport:
    """Create the configuration, PIN files and token if missing; running it again changes
    nothing."""
    settings.check_module()  # first: a mistyped path is not "another HSM"
    if not is_softhsm(settings):
        raise ConfigError(
            f"'sharelock hsm init' only initialises SoftHSM2; {settings.pkcs11_module} is another "
            "HSM: initialise its token with the vendor's tools (see hsm/README.md)"
        )
    hsm_dir = settings.hsm_dir
    token_dir = hsm_dir / "tokens"
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    hsm_dir.chmod(0o700)

    conf = settings.softhsm_conf_path
    if not conf.exists():
        template = (
            resources.files("sharelock.keys").joinpath("softhsm2.conf.template").read_text("utf-8")
        )
        conf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conf.write_text(template.replace("@TOKEN_DIR@", str(token_dir)), encoding="utf-8")
        conf.chmod(0o600)

    so_pin = _pin(
        settings.hsm_so_pin.get_secret_value() if settings.hsm_so_pin else None,
        settings.so_pin_path,
    )
    user_pin = _pin(
        settings.hsm_pin.get_secret_value() if settings.hsm_pin else None,
        settings.user_pin_path,
    )

    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    label = settings.hsm_token_label
    if label in _token_labels(env):
        return InitReport(conf, label, created=False)
    code = _run_with_tty(
        [_tool(), "--init-token", "--free", "--label", label],
        [so_pin, so_pin, user_pin, user_pin],
        env,
    )
    if code != 0 or label not in _token_labels(env):
        raise ConfigError(f"softhsm2-util could not initialise token {label!r} (exit {code})")
    return InitReport(conf, label, created=True)
