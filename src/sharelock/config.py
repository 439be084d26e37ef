"""The one configuration object: every `SHARELOCK_*` variable, with working embedded defaults.

Every module that needs a setting receives a `Settings` instance; nothing else reads the
environment (except `SOFTHSM2_CONF`, which SoftHSM itself reads and `Settings.softhsm_conf`
points at).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated

from limits import parse as parse_rate
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from sharelock.errors import ConfigError
from sharelock.redis_settings import check_redis_settings, parse_addresses

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


class Retention(BaseModel):
    """Every retention limit of the product, in one place (SPEC, "Retention").

    The code enforces these values, and the documentation and the record of processing are
    generated from them, so what is written cannot differ from what is enforced.
    Override with e.g. `SHARELOCK_RETENTION__SESSION=PT10M`."""

    model_config = ConfigDict(frozen=True)

    session: timedelta = Field(
        default=timedelta(hours=1), description="anonymous session (flow state), from creation"
    )
    authorization_code: timedelta = Field(
        default=timedelta(seconds=60), description="authorization code, single use"
    )
    access_token: timedelta = Field(
        default=timedelta(minutes=5), description="access token, single use"
    )
    pushed_request: timedelta = Field(
        default=timedelta(seconds=90), description="pushed authorization request (PAR)"
    )
    identity_data: timedelta = Field(
        default=timedelta(hours=72), description="identity data kept for identity verification"
    )
    audit_trace: timedelta = Field(
        default=timedelta(days=396), description="pseudonymised audit trace (13 months)"
    )
    maintenance_credentials: timedelta = Field(
        default=timedelta(days=120),
        description="credentials kept for corrective maintenance, only with the user's consent",
    )
    rights_proof: timedelta = Field(
        default=timedelta(minutes=10),
        description="proof of control of a data-source account, for a person's rights",
    )
    # The optional account (`sharelock.accounts`, docs/accounts.md).
    account: timedelta = Field(
        default=timedelta(days=396),
        description="optional account unused for this long (13 months), deleted with all it holds",
    )
    account_session: timedelta = Field(
        default=timedelta(minutes=15), description="signed-in session on the account page"
    )

    @model_validator(mode="after")
    def _coherent(self) -> Retention:
        if self.pushed_request >= timedelta(seconds=600):
            raise ValueError("pushed_request must stay under 600 s (RFC 9126)")
        for name in ("authorization_code", "access_token", "pushed_request"):
            if getattr(self, name) > self.session:
                raise ValueError(f"{name} cannot outlive the session")
        return self


def _rate(value: str) -> str:
    """A rate such as `3/hour` or `600/minute`, as the `limits` library reads it."""
    try:
        parse_rate(value)
    except ValueError:
        raise ValueError("must be a rate such as '3/hour' or '600 per minute'") from None
    return value


Rate = Annotated[str, AfterValidator(_rate)]


class Limits(BaseModel):
    """Every rate limit of the broker, in one place (docs/threat-model.md, "Abuse"). Each is a
    moving window kept in the shared Redis, so it holds across workers and nodes. Override
    with e.g. `SHARELOCK_LIMITS__PER_ADDRESS="120/minute"`."""

    model_config = ConfigDict(frozen=True)

    per_address: Rate = Field(
        default="300/minute",
        description="requests from one client address to the person-facing endpoints",
    )
    failed_auth_per_address: Rate = Field(
        default="30/minute",
        description="failed client or token authentications from one address (partner and "
        "auditor endpoints); once spent, further attempts are refused before any work",
    )
    par_per_partner: Rate = Field(
        default="600/minute", description="pushed authorization requests per partner"
    )
    token_per_partner: Rate = Field(default="600/minute", description="token requests per partner")
    wrong_passwords_per_flow: Rate = Field(
        default="3/hour",
        description="wrong passwords or one-time codes in one share (a share lasts an hour)",
    )
    wrong_passwords_per_login: Rate = Field(
        default="3/hour",
        description="wrong passwords or codes for one login at one data source, across shares: "
        "the broker must not be a way to guess passwords or to lock people out at their bank",
    )
    rights_per_address: Rate = Field(
        default="20/hour", description="rights requests (proofs, traces, export, erasure)"
    )
    auditor_lookups: Rate = Field(
        default="600/hour", description="look-ups (hash, traces, export) per auditor"
    )


class Settings(BaseSettings):
    """Broker configuration, read from `SHARELOCK_*` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="SHARELOCK_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    state_dir: Path = Field(
        default=Path("var"),
        description="Local state of the embedded setup (SoftHSM tokens, PIN files, SQLite).",
    )
    issuer: str = Field(default="http://127.0.0.1:8000", description="OAuth issuer URL.")
    controller_name: str = Field(
        default="Sharelock",
        min_length=1,
        max_length=200,
        description="Who runs this broker, as the rights page names the controller.",
    )
    dpo_contact: str = Field(
        default="dpo@sharelock.example",
        min_length=1,
        max_length=400,
        description="How a person reaches the broker's data-protection officer (an e-mail "
        "address, a URL or a postal address), shown on the rights page.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    operator_host: str = Field(
        default="127.0.0.1", description="Where `serve` answers /metrics (and the probes)."
    )
    operator_port: int = Field(default=8300, ge=1, le=65535)
    log_level: str = Field(
        default="info",
        pattern=r"(?i)^(debug|info|warning|error|critical)$",
        description="Level of the JSON logs `serve` writes to stderr.",
    )
    # HTTPS in `serve` itself, for a single host without a TLS proxy in front
    # (docs/operations.md, "Deploying several nodes").
    tls_cert_file: Path | None = Field(
        default=None,
        description="PEM certificate (chain included) `serve` answers HTTPS with; unset: HTTP.",
    )
    tls_key_file: Path | None = Field(default=None, description="Its private key (PEM).")

    @model_validator(mode="after")
    def _tls_coherent(self) -> Settings:
        # A ConfigError, which pydantic lets through as it is.
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError(
                "SHARELOCK_TLS_CERT_FILE and SHARELOCK_TLS_KEY_FILE go together: set both or "
                "neither"
            )
        if self.tls_cert_file is not None and not self.issuer.startswith("https://"):
            raise ConfigError("SHARELOCK_ISSUER: must be an https:// URL when serving TLS")
        return self

    redis_url: str | None = Field(
        default=None,
        description="Redis URL; unset means the embedded redis-server.",
        repr=False,  # may carry the password
    )
    # Redis through Sentinel, TLS and an ACL user (docs/operations.md, "Redis high
    # availability"); parsed and checked by `sharelock.redis_settings`.
    redis_sentinels: Annotated[tuple[tuple[str, int], ...], NoDecode] = Field(
        default=(),
        description="Sentinels as host:port,host:port; exclusive with SHARELOCK_REDIS_URL.",
    )
    redis_sentinel_service: str | None = Field(
        default=None, description="The service (master name) the Sentinels monitor."
    )
    redis_username: str | None = Field(default=None, description="ACL user on the data nodes.")
    redis_password: SecretStr | None = None
    redis_sentinel_username: str | None = Field(
        default=None, description="ACL user on the Sentinels."
    )
    redis_cluster_nodes: Annotated[tuple[tuple[str, int], ...], NoDecode] = Field(
        default=(),
        description="Redis Cluster nodes to start from, as host:port,host:port; exclusive with "
        "SHARELOCK_REDIS_URL and SHARELOCK_REDIS_SENTINELS.",
    )
    redis_sentinel_password: SecretStr | None = None
    redis_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle: TLS, verified, to Redis and the Sentinels."
    )
    redis_tls_cert_file: Path | None = Field(default=None, description="TLS client certificate.")
    redis_tls_key_file: Path | None = Field(default=None, description="Its private key.")

    @field_validator("redis_sentinels", "redis_cluster_nodes", mode="before")
    @classmethod
    def _addresses(cls, value: object) -> object:
        return parse_addresses(value)

    @model_validator(mode="after")
    def _redis_coherent(self) -> Settings:
        check_redis_settings(self)  # a ConfigError, which pydantic lets through as it is
        return self

    @property
    def redis_configured(self) -> bool:
        """Whether an outside Redis is set (URL, Sentinels or cluster nodes): if not, the
        embedded one runs."""
        return bool(self.redis_url or self.redis_sentinels or self.redis_cluster_nodes)

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
    max_image_envelope_bytes: int = Field(
        default=3 * 1024 * 1024,
        ge=64 * 1024,
        le=16 * 1024 * 1024,
        description="Longest compact JWE of one identity-verification image (a 2 MiB photo, "
        "base64url-encoded, fits in 3 MiB).",
    )
    retention: Retention = Field(default_factory=Retention)
    limits: Limits = Field(default_factory=Limits)
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses or networks (CIDR) of the reverse proxies whose X-Forwarded-For "
        "is believed, as a JSON list; unset means the peer address is the client's.",
    )

    sandbox_url: str = Field(
        default="http://127.0.0.1:8100", description="Base URL of the sandbox data sources."
    )
    sandbox_port: int = Field(default=8100, ge=1, le=65535)
    demo_partner_port: int = Field(default=8200, ge=1, le=65535)
    expiry_sweep_seconds: float = Field(
        default=60.0, gt=0, description="How often `serve` records flows that Redis expired."
    )
    key_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often `serve` re-reads the token's keys (rotation by another process).",
    )
    retention_interval_seconds: float = Field(
        default=6 * 3600,
        gt=0,
        description="How often `serve` purges past-retention audit rows and signs a checkpoint.",
    )
    account_offers: bool = Field(
        default=True,
        description="After a share collected with a password, offer to remember the data "
        "source in an optional account (passkeys; only where the issuer's host is a name).",
    )
    account_sync_interval_seconds: float = Field(
        default=24 * 3600,
        ge=3600,
        description="How often a remembered source whose person allowed periodic re-syncs is "
        "checked (a sign-in, nothing collected or kept).",
    )
    service_documentation: str | None = Field(
        default=None,
        description="URL of the partners' documentation, announced in the metadata "
        "(RFC 8414 service_documentation); unset, the member is left out.",
    )
    dpop_nonces: bool = Field(
        default=False,
        description="Require DPoP server nonces (RFC 9449 §8) in proofs at /par, /token and "
        "/v1/share: a client's first proof is refused with use_dpop_nonce and a DPoP-Nonce to "
        "use. Every node derives the same nonce key from the HSM token.",
    )
    partner_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a broker process remembers a partner it looked up: a change "
        "made elsewhere (disable, rotate-secret) reaches it within this time (0: never cached).",
    )
    connector_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds before a data source is given up on."
    )
    # Webhooks to partners (`sharelock.webhooks`, docs/partner-guide.md, "Webhooks").
    webhook_enabled: bool = Field(
        default=True,
        description="Whether `serve` relays audit events to partners' webhooks and sends them.",
    )
    webhook_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds before a webhook push is given up on."
    )
    webhook_retry_horizon: timedelta = Field(
        default=timedelta(hours=24),
        description="How long a webhook event is retried before it goes to the dead letters.",
    )
    webhook_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="How often `serve` relays new audit events to the webhook queue and sends.",
    )

    @field_validator("webhook_retry_horizon")
    @classmethod
    def _positive_horizon(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network: {item!r}") from None
        return value

    @field_validator("controller_name", "dpo_contact")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if re.search(r"[\x00-\x1f\x7f]", value) or not value.strip():
            raise ValueError("must be one line of text, without control characters")
        return value.strip()

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
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_path / 'sharelock.db'}"

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
        except (OSError, UnicodeDecodeError) as exc:  # a directory, unreadable, not text
            raise ConfigError(
                f"SHARELOCK_HSM_PIN_FILE: cannot read the PIN file {path} ({type(exc).__name__})"
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
        # Nested settings are read from SHARELOCK_<FIELD>__<MEMBER> (`env_nested_delimiter`).
        problems = "; ".join(
            f"SHARELOCK_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
    except SettingsError as exc:
        # A structured value (JSON) that does not parse; the message names the field only.
        field = re.search(r'field "([^"]+)"', str(exc))
        name = f"SHARELOCK_{field.group(1).upper()}" if field else "a SHARELOCK_ variable"
        raise ConfigError(f"invalid configuration: {name}: not valid JSON") from None
