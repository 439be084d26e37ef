"""Headless Chromium for the browser tests: launch, watch, accessibility, screenshots.

- `launch_chromium` starts Debian's `chromium` through Playwright (never a downloaded browser);
  a missing binary fails the test, it is never skipped.
- `Watch` records every request and response a browser context makes, console errors and
  uncaught exceptions, so a test can prove that no request carried a clear credential, that
  the page talked to no other host, and that nothing went wrong in the page.
- `axe_violations` runs axe-core (npm `axe-core`, installed under `tests/browser/` by
  `ensure_axe`) in the page as it is, under the page's own Content-Security-Policy: the script
  is evaluated through the DevTools protocol, which CSP does not govern, so the page keeps its
  real policy for everything else.
- `Screens` saves a step's screenshot at desktop and phone widths (into `docs/screenshots/` with
  `SHARELOCK_UPDATE_SCREENSHOTS=1`).
- `chromium` is a test module's one browser (axe-core ready); `check_axe` is a step's check:
  no serious or critical violation (`BLOCKING`), and its screenshots when named.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)
from playwright.sync_api import Request as PwRequest
from playwright.sync_api import Response as PwResponse

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NPM_DIR = ROOT / "tests" / "browser"
AXE_JS = NPM_DIR / "node_modules" / "axe-core" / "axe.min.js"
# The run refreshes the screenshots of docs/user-journey.md when asked
# (`SHARELOCK_UPDATE_SCREENSHOTS=1 make test`); otherwise it writes them under tests/artifacts/
# (git-ignored), so an ordinary run leaves the work tree clean.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("SHARELOCK_UPDATE_SCREENSHOTS") == "1"
    else ROOT / "tests" / "artifacts" / "screenshots"
)
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
VIEWPORTS: dict[str, ViewportSize] = {"desktop": DESKTOP, "phone": PHONE}
# A step waits this long for the page at the most (a loaded machine is slow, not broken).
STEP_TIMEOUT_MS = 15_000
# The axe-core impacts that fail a step; the others are only reported.
BLOCKING = ("serious", "critical")
# base64url's alphabet: a secret found inside a run of these is part of some random token
# (a JWE, a flow id), not the secret itself. Longer secrets are searched for anywhere.
_TOKEN_CHARS = "A-Za-z0-9_-"
_SHORT_SECRET = 8


def launch_chromium(playwright: Playwright) -> Browser:
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: install Debian's 'chromium' package"
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


@contextmanager
def chromium() -> Iterator[Browser]:
    """One Chromium (`launch_chromium`), with axe-core installed first; closed after."""
    ensure_axe()
    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        try:
            yield launched
        finally:
            launched.close()


def ensure_axe() -> Path:
    """axe-core from `tests/browser/package-lock.json`, installed with `npm ci` if missing."""
    if not AXE_JS.is_file():
        npm = shutil.which("npm")
        assert npm, "npm is missing: install Debian's 'npm' package (the tests need axe-core)"
        subprocess.run(
            [npm, "ci", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    assert AXE_JS.is_file(), f"npm ci did not install {AXE_JS}"
    return AXE_JS


@cache
def _axe_source() -> str:
    return ensure_axe().read_text(encoding="utf-8")


def axe_violations(
    page: Page, impacts: Iterable[str] = ("serious", "critical", "moderate", "minor")
) -> list[str]:
    """Run axe-core on the page as shown; its violations of the given impacts, readable
    ("id (impact): help at targets")."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source() + "\n;undefined")
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                   "wcag22aa", "best-practice"] },
                resultTypes: ["violations"],
            });
            return { violations: r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
            })) };
        }"""
    )
    wanted = set(impacts)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['targets'])}"
        for v in result["violations"]
        if v["impact"] in wanted
    ]


def _contains(text: str, secret: str) -> bool:
    if len(secret) >= _SHORT_SECRET:
        return secret in text
    pattern = rf"(?<![{_TOKEN_CHARS}]){re.escape(secret)}(?![{_TOKEN_CHARS}])"
    return re.search(pattern, text) is not None


@dataclass
class Watch:
    """Everything a browser context sends and every problem its pages report."""

    requests: list[PwRequest] = field(default_factory=list)
    responses: list[PwResponse] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.on("request", self._request)
        context.on("response", self._response)
        context.on("page", self.attach_page)
        for page in context.pages:
            self.attach_page(page)

    def attach_page(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _request(self, request: PwRequest) -> None:
        self.requests.append(request)

    def _response(self, response: PwResponse) -> None:
        self.responses.append(response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def sent_texts(self) -> list[tuple[str, str]]:
        """(request, text) for every URL, header and body the context sent, raw and
        percent-decoded."""
        out = []
        for request in self.requests:
            label = f"{request.method} {request.url}"
            parts = [request.url]
            try:
                headers = request.all_headers()
            except Exception:  # the page went away: the provisional headers are all there is
                headers = request.headers
            parts.extend(f"{name}: {value}" for name, value in headers.items())
            body = request.post_data_buffer
            if body:
                parts.append(body.decode("utf-8", "replace"))
            for part in parts:
                out.append((label, part))
                out.append((label, unquote(part)))
        return out

    def assert_no_secret_sent(self, secrets: Iterable[str]) -> None:
        texts = self.sent_texts()
        assert texts, "no request was recorded"
        for secret in secrets:
            leaks = {label for label, text in texts if _contains(text, secret)}
            assert not leaks, f"a clear credential went out in: {sorted(leaks)}"

    def assert_only_hosts(self, *origins: str) -> None:
        allowed = {urlsplit(origin).netloc for origin in origins}
        others = sorted({r.url for r in self.requests if urlsplit(r.url).netloc not in allowed})
        assert not others, f"requests to other hosts: {others}"

    def assert_clean(self) -> None:
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.page_errors, f"uncaught errors in the page: {self.page_errors}"

    def broker_answers(self, broker: str, path_prefix: str) -> list[PwResponse]:
        netloc = urlsplit(broker).netloc
        return [
            r
            for r in self.responses
            if urlsplit(r.url).netloc == netloc and urlsplit(r.url).path.startswith(path_prefix)
        ]


class Screens:
    """Screenshots of a step at desktop and phone widths, for docs/user-journey.md."""

    def __init__(self, directory: Path = SCREENSHOTS) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def take(
        self,
        page: Page,
        name: str,
        *,
        widths: Iterable[str] = ("desktop", "phone"),
        full_page: bool = True,
    ) -> None:
        """`{name}-desktop.png` and `{name}-phone.png`: the whole page at each width, or (with
        `full_page=False`) only what fits in the window, as a person first sees it."""
        size = page.viewport_size or DESKTOP
        try:
            for label in widths:
                page.set_viewport_size(VIEWPORTS[label])
                page.screenshot(
                    path=str(self.directory / f"{name}-{label}.png"),
                    full_page=full_page,
                    animations="disabled",
                    caret="hide",
                )
        finally:
            page.set_viewport_size(size)


def check_axe(
    page: Page,
    step: str,
    screens: Screens,
    screenshot: str | None = None,
    *,
    report: dict[str, list[str]] | None = None,
) -> list[str]:
    """A step's check: axe-core finds no `BLOCKING` violation on the page as shown, then the
    step's screenshots when `screenshot` names them. Every finding, blocking or not, goes into
    `report` under `step` (before the verdict, so a failed step is in it too) and is returned."""
    found = axe_violations(page)
    if report is not None:
        report[step] = found
    blocking = [v for v in found if any(f"({impact})" in v for impact in BLOCKING)]
    assert not blocking, f"axe on step {step!r}: {blocking}"
    if screenshot:
        screens.take(page, screenshot)
    return found
