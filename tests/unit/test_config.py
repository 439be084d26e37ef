"""`load_settings`: every wrong `SHARELOCK_*` value gives one readable `ConfigError` that names
the variable to fix; the defaults work for the embedded setup."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from sharelock.config import Settings, load_settings
from sharelock.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.upper().startswith("SHARELOCK_"):
            monkeypatch.delenv(name)
    yield monkeypatch


def config_error(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__  # no pydantic traceback chained under it
    return message


def test_defaults_work_without_any_variable() -> None:
    settings = load_settings()
    assert settings.state_dir == Path("var")
    assert settings.hsm_token_label == "sharelock"
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.key_grace_period == timedelta(days=7)
    assert settings.max_envelope_bytes == 64 * 1024
    assert settings.hsm_pin is None
    assert settings.user_pin_path == settings.state_path / "hsm" / "user.pin"
    assert settings.softhsm_conf_path == settings.state_path / "hsm" / "softhsm2.conf"


def test_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHARELOCK_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SHARELOCK_ISSUER", "https://broker.example/")
    monkeypatch.setenv("SHARELOCK_KEY_GRACE_PERIOD", "PT2S")
    monkeypatch.setenv("SHARELOCK_HSM_PIN", "1234-pin")
    settings = load_settings()
    assert settings.state_path == tmp_path.resolve()
    assert settings.issuer == "https://broker.example"  # trailing slash dropped
    assert settings.key_grace_period == timedelta(seconds=2)
    assert settings.user_pin() == "1234-pin"
    assert "1234-pin" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SHARELOCK_PORT", "eighty", "valid integer"),
        ("SHARELOCK_PORT", "0", "greater than or equal to 1"),
        ("SHARELOCK_PORT", "65536", "less than or equal to 65535"),
        ("SHARELOCK_ISSUER", "ftp://broker.example", "http(s) URL"),
        ("SHARELOCK_ISSUER", "https://broker.example/?x=1", "without query"),
        ("SHARELOCK_ISSUER", "https://broker.example/#top", "fragment"),
        ("SHARELOCK_HSM_TOKEN_LABEL", "", "at least 1"),
        ("SHARELOCK_HSM_TOKEN_LABEL", "x" * 33, "at most 32"),
        ("SHARELOCK_KEY_GRACE_PERIOD", "two days", "timedelta"),
        ("SHARELOCK_MAX_ENVELOPE_BYTES", "10", "greater than or equal to 1024"),
        ("SHARELOCK_MAX_ENVELOPE_BYTES", "lots", "valid integer"),
    ],
)
def test_a_wrong_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    message = config_error(monkeypatch, **{variable: value})
    assert message.startswith(f"invalid configuration: {variable}: ")
    assert says in message


def test_every_wrong_value_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(
        monkeypatch,
        SHARELOCK_PORT="eighty",
        SHARELOCK_ISSUER="ftp://x",
        SHARELOCK_KEY_GRACE_PERIOD="?",
    )
    for variable in ("SHARELOCK_PORT", "SHARELOCK_ISSUER", "SHARELOCK_KEY_GRACE_PERIOD"):
        assert message.count(f"{variable}: ") == 1
    assert message.count("; ") == 2


def test_lower_case_names_are_read_too(monkeypatch: pytest.MonkeyPatch) -> None:
    message = config_error(monkeypatch, sharelock_port="eighty")
    assert "SHARELOCK_PORT" in message


def test_nested_value_names_the_variable_that_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """`retention` members are set with SHARELOCK_RETENTION__<MEMBER>; the error must name
    that variable, not SHARELOCK_RETENTION_<MEMBER>, which nothing reads."""
    if "retention" not in Settings.model_fields:
        pytest.skip("no nested settings")
    message = config_error(monkeypatch, SHARELOCK_RETENTION__SESSION="an hour")
    assert "SHARELOCK_RETENTION__SESSION: " in message
    monkeypatch.setenv("SHARELOCK_RETENTION__SESSION", "PT30M")
    assert load_settings().retention.session == timedelta(minutes=30)


def test_structured_value_that_is_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    if "retention" not in Settings.model_fields:
        pytest.skip("no nested settings")
    message = config_error(monkeypatch, SHARELOCK_RETENTION="{not json")
    assert message == "invalid configuration: SHARELOCK_RETENTION: not valid JSON"


def test_missing_pin_file_says_how_to_get_one(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        settings.user_pin()
    message = str(info.value)
    assert "SHARELOCK_HSM_PIN" in message and "sharelock hsm init" in message
    assert str(tmp_path / "hsm" / "user.pin") in message


@pytest.mark.parametrize("kind", ["directory", "not text"])
def test_unreadable_pin_file_is_a_config_error(tmp_path: Path, kind: str) -> None:
    pin_file = tmp_path / "pin"
    if kind == "directory":
        pin_file.mkdir()
    else:
        pin_file.write_bytes(b"\xff\xfe\x00secret")
    with pytest.raises(ConfigError) as info:
        Settings(state_dir=tmp_path, hsm_pin_file=pin_file).user_pin()
    assert str(info.value).startswith("SHARELOCK_HSM_PIN_FILE: ")
    assert "secret" not in str(info.value)


def test_pin_file_is_read_and_stripped(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("  s3cret-pin \n")
    assert Settings(state_dir=tmp_path, hsm_pin_file=pin_file).user_pin() == "s3cret-pin"


def test_pin_variable_wins_over_pin_file(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("from-file")
    settings = Settings(state_dir=tmp_path, hsm_pin_file=pin_file, hsm_pin=SecretStr("from-env"))
    assert settings.user_pin() == "from-env"


def test_missing_module_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(pkcs11_module=tmp_path / "libnothing.so").check_module()
    assert str(info.value).startswith("SHARELOCK_PKCS11_MODULE: ")
    assert str(tmp_path / "libnothing.so") in str(info.value)
