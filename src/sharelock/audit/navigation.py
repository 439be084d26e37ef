"""Navigation data for the audit trail: a coarse browser family and device type.

The full user agent and the IP address are never stored (SPEC, "Audit trace"): together they
single a person out. These coarse buckets are enough to spot a bot or an unusual pattern and
too coarse to identify anyone.
"""

from __future__ import annotations

import re
from typing import Literal

BrowserFamily = Literal["chrome", "firefox", "safari", "edge", "other"]
DeviceType = Literal["desktop", "mobile", "tablet", "bot", "unknown"]

BROWSER_FAMILIES: tuple[BrowserFamily, ...] = ("chrome", "firefox", "safari", "edge", "other")
DEVICE_TYPES: tuple[DeviceType, ...] = ("desktop", "mobile", "tablet", "bot", "unknown")

# Only the start of a header is looked at: enough for every real browser, and a bound on work.
MAX_UA_LENGTH = 512

_BOT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|curl/|wget/|python-|python/|httpx/|go-http-client|"
    r"java/|libwww|okhttp|headlesschrome|phantomjs|facebookexternalhit",
    re.IGNORECASE,
)
_EDGE = re.compile(r"\b(?:Edg|Edge|EdgA|EdgiOS)/")
_OTHER_CHROMIUM = re.compile(r"\b(?:OPR|Opera|SamsungBrowser|YaBrowser|UCBrowser|Vivaldi)/")
_CHROME = re.compile(r"\b(?:HeadlessChrome|Chrome|CriOS|Chromium)/")
_FIREFOX = re.compile(r"\b(?:Firefox|FxiOS)/")
_SAFARI = re.compile(r"\bVersion/[\d.]+.*\bSafari/|\bMobile/\w+\s+Safari/")
_TABLET = re.compile(r"iPad|Tablet|Kindle|Silk/|PlayBook|Nexus (?:7|9|10)\b", re.IGNORECASE)
_ANDROID = re.compile(r"Android", re.IGNORECASE)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Windows Phone|BlackBerry|Opera Mini", re.IGNORECASE)
_DESKTOP = re.compile(r"Windows NT|Macintosh|Mac OS X|X11|Linux|CrOS", re.IGNORECASE)


def _browser(ua: str) -> BrowserFamily:
    if _EDGE.search(ua):
        return "edge"
    if _OTHER_CHROMIUM.search(ua):
        return "other"
    if _CHROME.search(ua):
        return "chrome"
    if _FIREFOX.search(ua):
        return "firefox"
    if _SAFARI.search(ua):
        return "safari"
    return "other"


def _device(ua: str) -> DeviceType:
    if _TABLET.search(ua):
        return "tablet"
    if _ANDROID.search(ua):
        # Android phones say "Mobile"; Android tablets do not.
        return "mobile" if "Mobile" in ua else "tablet"
    if _MOBILE.search(ua):
        return "mobile"
    if _DESKTOP.search(ua):
        return "desktop"
    return "unknown"


def describe_user_agent(ua: str | None) -> tuple[BrowserFamily, DeviceType]:
    """(browser family, device type) for a `User-Agent` header; the header itself is dropped."""
    if not ua or not ua.strip():
        return "other", "unknown"
    head = ua[:MAX_UA_LENGTH]
    if _BOT.search(head):
        return _browser(head), "bot"
    return _browser(head), _device(head)
