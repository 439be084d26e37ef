"""The one configuration object: every `SHARELOCK_*` variable, with working embedded defaults.

Every module that needs a setting receives a `Settings` instance; nothing else reads the
environment (except `SOFTHSM2_CONF`, which SoftHSM itself reads and `Settings.softhsm_conf`
points at).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sharelock.errors import ConfigError

# Where Debian, Ubuntu, Fedora and Homebrew put SoftHSM2's PKCS#11 module.
_SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)


def _default_module() -> Path:
    for candidate in _SOFTHSM_MODULE_CANDIDATES:
        if Path(candidate).exists():
            return Path(candidate)
    return Path(_SOFTHSM_MODULE_CANDIDATES[0])


class Settings(BaseSettings):
    """Broker configuration, read from `SHARELOCK_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="SHARELOCK_", extra="ignore", frozen=True)

    state_dir: Path = Field(
        default=Path("var"),
        description="Local state of the embedded setup (SoftHSM tokens, PIN files, SQLite).",
    )
    issuer: str = Field(default="http://127.0.0.1:8000", description="OAuth issuer URL.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    redis_url: str | None = Field(
        default=None, description="Redis URL; unset means the embedded redis-server."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite under the state directory."
    )

    pkcs11_module: Path = Field(default_factory=_default_module)
    hsm_token_label: str = Field(default="sharelock", min_length=1, max_length=32)
    hsm_pin: SecretStr | None = None
    hsm_pin_file: Path | None = None
    hsm_so_pin: SecretStr | None = None
    hsm_so_pin_file: Path | None = None
    softhsm_conf: Path | None = Field(
        default=None,
        description="SoftHSM2 configuration file; unset means one under the state directory.",
    )

    key_grace_period: timedelta = Field(
        default=timedelta(days=7),
        description="How long a rotated-out encryption key keeps decrypting, then is destroyed.",
    )
    max_envelope_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @cached_property
    def state_path(self) -> Path:
        return self.state_dir.resolve()

    @property
    def hsm_dir(self) -> Path:
        return self.state_path / "hsm"

    @property
    def softhsm_conf_path(self) -> Path:
        return self.softhsm_conf if self.softhsm_conf else self.hsm_dir / "softhsm2.conf"

    @property
    def user_pin_path(self) -> Path:
        return self.hsm_pin_file if self.hsm_pin_file else self.hsm_dir / "user.pin"

    @property
    def so_pin_path(self) -> Path:
        return self.hsm_so_pin_file if self.hsm_so_pin_file else self.hsm_dir / "so.pin"

    def user_pin(self) -> str:
        """The token's user PIN, from `SHARELOCK_HSM_PIN` or the PIN file."""
        if self.hsm_pin is not None:
            return self.hsm_pin.get_secret_value()
        path = self.user_pin_path
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(
                f"no HSM PIN: set SHARELOCK_HSM_PIN or SHARELOCK_HSM_PIN_FILE, or run "
                f"'sharelock hsm init' (expected a PIN file at {path})"
            ) from None

    def check_module(self) -> None:
        if not self.pkcs11_module.is_file():
            raise ConfigError(
                f"SHARELOCK_PKCS11_MODULE: no PKCS#11 module at {self.pkcs11_module} "
                "(install softhsm2, or point it at your HSM vendor's library)"
            )


def load_settings() -> Settings:
    """Read the settings, turning validation errors into one readable `ConfigError`."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"SHARELOCK_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
