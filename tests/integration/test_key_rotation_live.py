"""Rotation as a running broker lives it: `keys rotate` from another process reaches it at its
next refresh, and the retired key stops decrypting when its grace period ends."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli_keys import base_env, runner


def test_running_layer_follows_rotation_and_grace(tmp_path: Path) -> None:
    run = runner(base_env(tmp_path, SHARELOCK_KEY_GRACE_PERIOD="PT8S"))
    run("hsm", "init")
    report = json.loads(run("worker", "live-rotation").stdout)
    assert report["rotate_exit"] == 0
    assert report["old_opens_before"] is True
    # Until it refreshes, the running layer still publishes the old key as active ...
    assert report["active_before_refresh"] == report["old_kid"]
    # ... then the new key leads, the old one is still published and still opens.
    assert report["active_after_refresh"] != report["old_kid"]
    assert report["published_after_refresh"] == [report["active_after_refresh"], report["old_kid"]]
    assert report["old_opens_in_grace"] is True
    assert report["new_opens"] is True
    # Past the grace period the old key neither opens nor is published, with no refresh.
    assert report["old_opens_after_grace"] is False
    assert report["published_after_grace"] == [report["active_after_refresh"]]
