"""Which Redis commands a share costs, and who sends them: Redis MONITOR over a short run,
then every command classified by what it names (the record kind of its first key, or the
script it runs). For `bench_flow.py --redis-monitor N`; MONITOR slows Redis down, so its run
is an extra one, apart from the timed runs.

A line of MONITOR is `<time> [<db> <client>] "<COMMAND>" "<arg>" …`; commands run by a script
come with `lua` as their client, right after the script's own line, and cost no round trip.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from importlib.resources import files
from pathlib import Path

import redis

_LINE = re.compile(r'^[0-9.]+ \[\d+ (?P<client>[^\]]+)\] (?P<rest>".*)$')
# Modules whose Lua sources (module-level strings calling redis.call) name the scripts.
SCRIPT_MODULES = (
    "sharelock.store.scripts",
    "sharelock.ratelimit.windows",
    "sharelock.webhooks.queue",
)


def known_scripts() -> dict[str, str]:
    """SHA-1 of every script the broker may run → a short name."""
    names: dict[str, str] = {}
    for module_name in SCRIPT_MODULES:
        try:
            module = import_module(module_name)
        except ImportError:
            continue
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()] = name.strip("_").lower()
    lua = files("limits").joinpath("resources/redis/lua_scripts")
    for entry in lua.iterdir():
        if entry.name.endswith(".lua"):
            sha = hashlib.sha1(entry.read_bytes()).hexdigest()
            names[sha] = "limits:" + entry.name.removesuffix(".lua")
    return names


def _kind(key: str) -> str:
    """What a key is, without its id: `sl:<kind>`, `sl-ratelimit:refused:<limit>`, or the
    `limits` library's window (`sl-ratelimit:window`)."""
    if key.startswith("sl-ratelimit:"):
        rest = key.removeprefix("sl-ratelimit:")
        if rest.startswith("refused:"):
            return "sl-ratelimit:refused:" + rest.split(":")[1]
        return "sl-ratelimit:" + rest.split(":")[0].split("/")[0].lower()
    parts = key.split(":")
    return ":".join(parts[:2]) if len(parts) > 2 else key


@dataclass
class Tally:
    """Commands seen, sent by the broker (round trips, pipelined or not) and run by scripts."""

    sent: Counter[str] = field(default_factory=Counter)  # "GET sl:flow", "EVALSHA cas …"
    in_scripts: Counter[str] = field(default_factory=Counter)  # "LINDEX" …

    def add(self, line: str, scripts: dict[str, str]) -> None:
        match = _LINE.match(line.strip())
        if match is None:
            return
        try:
            words = shlex.split(match["rest"])
        except ValueError:
            return
        if not words:
            return
        command = words[0].upper()
        if match["client"] == "lua":
            self.in_scripts[command] += 1
            return
        if command in ("MONITOR", "INFO", "PING", "FLUSHALL", "CLIENT", "HELLO", "SELECT"):
            return
        if command in ("EVALSHA", "EVAL"):
            script = scripts.get(words[1], words[1][:8]) if command == "EVALSHA" else "eval"
            first = words[3] if len(words) > 3 and words[2] != "0" else ""
            self.sent[f"{command} {script} ({_kind(first)})"] += 1
            return
        self.sent[f"{command} {_kind(words[1]) if len(words) > 1 else ''}".strip()] += 1


def tally(path: Path) -> Tally:
    scripts = known_scripts()
    counted = Tally()
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            counted.add(line, scripts)
    return counted


@contextmanager
def monitoring(url: str, out: Path) -> Iterator[Path]:
    """MONITOR on its own connection into `out` (one line per command) for the duration of the
    block."""
    client = redis.Redis.from_url(url)
    stop = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        with client, client.monitor() as monitor, out.open("w", encoding="utf-8") as sink:
            connection = monitor.connection
            assert connection is not None
            ready.set()
            while not stop.is_set():
                if not connection.can_read(timeout=0.2):
                    continue
                reply = connection.read_response()
                if isinstance(reply, bytes):
                    sink.write(reply.decode("utf-8", "replace") + "\n")

    thread = threading.Thread(target=listen, name="redis-monitor", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield out
    finally:
        time.sleep(0.5)  # what was sent last is still on its way
        stop.set()
        thread.join(timeout=10)


def report_lines(counted: Tally, shares: int) -> list[str]:
    if not shares:
        return []
    sent = sum(counted.sent.values())
    inner = sum(counted.in_scripts.values())
    lines = [
        f"redis per share: {sent / shares:.1f} commands sent by the broker, "
        f"{inner / shares:.1f} more run inside scripts, {(sent + inner) / shares:.1f} in all"
    ]
    for name, calls in counted.sent.most_common():
        lines.append(f"  {calls / shares:6.2f}  {name}")
    lines.append(
        "  inside scripts: "
        + ", ".join(
            f"{name} {calls / shares:.1f}" for name, calls in counted.in_scripts.most_common()
        )
    )
    return lines
