"""The Redis settings (`SHARELOCK_REDIS_*`): Sentinels parsed from the environment, every
incoherent combination a one-line `ConfigError` naming the variables, and no password in a
repr or a message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sharelock.config import Settings, load_settings
from sharelock.errors import ConfigError
from sharelock.store import RedisEndpoint

SENTINELS = "127.0.0.1:26379,redis-b.example:26380,[::1]:26381"
SECRET = "s3cret-pass-word-123"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:

    for name in list(os.environ):
        if name.startswith("SHARELOCK_"):
            monkeypatch.delenv(name)


def env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"SHARELOCK_{name.upper()}", value)


def refused(monkeypatch: pytest.MonkeyPatch, **values: str) -> str:
    env(monkeypatch, **values)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert "\n" not in message
    assert SECRET not in message
    return message


def test_sentinels_are_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, redis_sentinels=f" {SENTINELS} ", redis_sentinel_service="sharelock")
    settings = load_settings()
    assert settings.redis_sentinels == (
        ("127.0.0.1", 26379),
        ("redis-b.example", 26380),
        ("::1", 26381),
    )
    assert settings.redis_configured
    endpoint = RedisEndpoint.from_settings(settings)
    assert endpoint.tls is None  # no CA file: plain (the URL says it otherwise)
    assert "127.0.0.1:26379" in endpoint.describe()


def test_nothing_set_means_the_embedded_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.redis_sentinels == () and not settings.redis_configured
    with pytest.raises(ConfigError, match="SHARELOCK_REDIS_SENTINELS"):
        RedisEndpoint.from_settings(settings)


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "a:1,,b:2",
        "bad host:1",
        f"user:{SECRET}@host:1",
        "[not-ipv6]:1",
        "a:1,a:1",
    ],
)
def test_malformed_sentinels_name_the_variable_not_the_entry(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = refused(monkeypatch, redis_sentinels=value, redis_sentinel_service="s")
    assert message.startswith("invalid configuration: SHARELOCK_REDIS_SENTINELS:")


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (
            {"redis_sentinels": SENTINELS, "redis_url": "redis://h:1/0"},
            "SHARELOCK_REDIS_URL and SHARELOCK_REDIS_SENTINELS are exclusive",
        ),
        ({"redis_sentinels": SENTINELS}, "SHARELOCK_REDIS_SENTINEL_SERVICE: required"),
        (
            {"redis_sentinels": SENTINELS, "redis_sentinel_service": "bad name"},
            "SHARELOCK_REDIS_SENTINEL_SERVICE",
        ),
        ({"redis_sentinel_service": "sharelock"}, "SHARELOCK_REDIS_SENTINELS is not"),
        ({"redis_sentinel_password": SECRET}, "SHARELOCK_REDIS_SENTINEL_PASSWORD is set"),
        (
            {"redis_url": "redis://h:1", "redis_username": "broker"},
            "SHARELOCK_REDIS_USERNAME needs SHARELOCK_REDIS_PASSWORD",
        ),
        (
            {"redis_url": f"redis://u:{SECRET}@h:1", "redis_password": SECRET},
            "keep one of them",
        ),
        (
            {"redis_url": "rediss://h:1/0?ssl_cert_reqs=none"},
            "certificates are always verified",
        ),
        (
            {"redis_url": "redis://h:1/0", "redis_tls_ca_file": "/etc/ssl/ca.pem"},
            "use a rediss:// URL",
        ),
        (
            {"redis_url": "rediss://h:1/0", "redis_tls_cert_file": "/c.pem"},
            "SHARELOCK_REDIS_TLS_CERT_FILE and SHARELOCK_REDIS_TLS_KEY_FILE go together",
        ),
        ({"redis_password": SECRET}, "none of SHARELOCK_REDIS_URL, SHARELOCK_REDIS_SENTINELS"),
        ({"redis_url": "http://h:1"}, "SHARELOCK_REDIS_URL: must be"),
        (
            {
                "redis_cluster_nodes": "h:7000",
                "redis_sentinels": SENTINELS,
                "redis_sentinel_service": "s",
            },
            "SHARELOCK_REDIS_SENTINELS and SHARELOCK_REDIS_CLUSTER_NODES are exclusive",
        ),
        (
            {"redis_cluster_nodes": "h:7000", "redis_sentinel_service": "s"},
            "SHARELOCK_REDIS_SENTINEL_SERVICE is set but SHARELOCK_REDIS_SENTINELS is not",
        ),
        (
            {"redis_cluster_nodes": "h:7000,h:7000"},
            "SHARELOCK_REDIS_CLUSTER_NODES: Value error, an address is listed twice",
        ),
    ],
)
def test_incoherent_settings_are_one_line_naming_the_variables(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], named: str
) -> None:
    assert named in refused(monkeypatch, **values)


def test_passwords_never_show(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    env(
        monkeypatch,
        redis_sentinels=SENTINELS,
        redis_sentinel_service="sharelock",
        redis_username="broker",
        redis_password=SECRET,
        redis_sentinel_username="watcher",
        redis_sentinel_password=SECRET + "-sentinel",
        redis_tls_ca_file=str(ca),
    )
    settings = load_settings()
    endpoint = RedisEndpoint.from_settings(settings)
    for text in (repr(settings), str(settings), repr(endpoint), endpoint.describe()):
        assert SECRET not in text
    assert endpoint.tls is not None and endpoint.tls.ca_file == ca
    assert endpoint.credentials() == {"username": "broker", "password": SECRET}


def test_a_url_password_does_not_show_in_the_settings_repr() -> None:
    settings = Settings(redis_url=f"redis://:{SECRET}@127.0.0.1:6379/0")
    assert SECRET not in repr(settings)
    assert SECRET not in repr(RedisEndpoint.from_settings(settings))


def test_an_unreadable_tls_file_names_its_variable(tmp_path: Path) -> None:
    settings = Settings(
        redis_url="rediss://127.0.0.1:6380/0", redis_tls_ca_file=tmp_path / "missing.pem"
    )
    with pytest.raises(ConfigError, match=r"^SHARELOCK_REDIS_TLS_CA_FILE: cannot read"):
        RedisEndpoint.from_settings(settings).tls_options()
