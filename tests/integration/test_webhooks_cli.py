"""Registering a partner's webhook as an operator does (`sharelock partners add|update
--webhook-url`, `partners list`), and the `sharelock webhooks` commands' refusals: the
installed console script, settings from the environment, a database of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {
        "SHARELOCK_STATE_DIR": str(tmp_path / "state"),
        "SHARELOCK_DATABASE_URL": database_url,
        "COLUMNS": "250",
    }

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SHARELOCK), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == expect, f"{args}: {done.returncode}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr
        return done

    return run


def add(run: Run, *extra: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    return run(
        "partners",
        "add",
        "--name",
        "Hooked Shop",
        "--redirect-uri",
        "https://shop.example/cb",
        "--scope",
        "identity",
        "--profile",
        "basic",
        *extra,
        expect=expect,
    )


def test_a_webhook_url_is_registered_listed_changed_and_removed(run: Run) -> None:
    added = json.loads(add(run, "--webhook-url", "https://shop.example/sharelock/events").stdout)
    client_id = added["client_id"]
    assert added["webhook_url"] == "https://shop.example/sharelock/events"

    listed = run("partners", "list").stdout
    assert "https://shop.example/sharelock/events" in listed and "webhook" in listed
    (shown,) = json.loads(run("partners", "list", "--json").stdout)
    assert shown["webhook_url"] == "https://shop.example/sharelock/events"

    moved = run("partners", "update", client_id, "--webhook-url", "http://127.0.0.1:9/hook")
    assert json.loads(moved.stdout)["webhook_url"] == "http://127.0.0.1:9/hook"
    # Changing the contact leaves the webhook as it is, and the other way round.
    contact = run("partners", "update", client_id, "--dpo-contact", "dpo@shop.example")
    assert json.loads(contact.stdout)["webhook_url"] == "http://127.0.0.1:9/hook"
    cleared = json.loads(run("partners", "update", client_id, "--webhook-url", "").stdout)
    assert cleared["webhook_url"] is None and cleared["dpo_contact"] == "dpo@shop.example"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://shop.example/hook", "http is allowed only for loopback hosts"),
        ("https://user@shop.example/hook", "must not contain user information"),
        ("https://shop.example/hook#frag", "must not contain a fragment"),
        ("ftp://shop.example/hook", "must be an absolute https URL"),
    ],
)
def test_a_webhook_url_that_is_not_https_is_refused(run: Run, url: str, says: str) -> None:
    refused = add(run, "--webhook-url", url, expect=2)
    assert "webhook_url" in refused.stderr and says in refused.stderr
    assert json.loads(run("partners", "list", "--json").stdout) == []


def test_a_wrong_update_changes_nothing(run: Run) -> None:
    client_id = json.loads(add(run, "--dpo-contact", "dpo@shop.example").stdout)["client_id"]
    refused = run(
        "partners",
        "update",
        client_id,
        "--dpo-contact",
        "new@shop.example",
        "--webhook-url",
        "http://shop.example/hook",
        expect=2,
    )
    assert "webhook_url" in refused.stderr
    (shown,) = json.loads(run("partners", "list", "--json").stdout)
    assert (shown["dpo_contact"], shown["webhook_url"]) == ("dpo@shop.example", None)
    nothing = run("partners", "update", client_id, expect=2)
    assert "nothing to change" in nothing.stderr


def test_webhook_commands_need_the_brokers_redis_and_say_what_to_replay(run: Run) -> None:
    embedded = run("webhooks", "list", expect=2)
    assert "SHARELOCK_REDIS_URL" in embedded.stderr
    neither = run("webhooks", "replay", expect=2)
    assert "--all" in neither.stderr
    both = run("webhooks", "replay", "12", "--all", expect=2)
    assert "--all" in both.stderr
