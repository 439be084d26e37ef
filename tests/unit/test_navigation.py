"""Navigation data: coarse browser family and device type, never the user agent itself."""

from __future__ import annotations

import time

import pytest

from sharelock.audit import BROWSER_FAMILIES, DEVICE_TYPES, describe_user_agent

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IOS = "Mozilla/5.0 ({device}; CPU {os} 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"

CASES = [
    (CHROME_WIN, "chrome", "desktop"),
    (CHROME_WIN + " Edg/124.0.2478.51", "edge", "desktop"),
    (CHROME_WIN + " OPR/109.0.0.0", "other", "desktop"),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "firefox",
        "desktop",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        "safari",
        "desktop",
    ),
    (
        IOS.format(device="iPhone", os="iPhone OS") + " Version/17.4 Mobile/15E148 Safari/604.1",
        "safari",
        "mobile",
    ),
    (
        IOS.format(device="iPad", os="OS") + " Version/17.4 Mobile/15E148 Safari/604.1",
        "safari",
        "tablet",
    ),
    (
        IOS.format(device="iPhone", os="iPhone OS") + " CriOS/124.0.6367.88 Mobile/15E148 "
        "Safari/604.1",
        "chrome",
        "mobile",
    ),
    (
        IOS.format(device="iPhone", os="iPhone OS") + " FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
        "firefox",
        "mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        "chrome",
        "mobile",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "chrome",
        "tablet",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        "other",
        "mobile",
    ),
    (
        "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
        "firefox",
        "mobile",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/124.0.6367.29 Safari/537.36",
        "chrome",
        "bot",
    ),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "other", "bot"),
    ("curl/8.5.0", "other", "bot"),
    ("python-httpx/0.27.0", "other", "bot"),
    ("Wget/1.21.4", "other", "bot"),
    ("something odd", "other", "unknown"),
    ("", "other", "unknown"),
    ("   ", "other", "unknown"),
    (None, "other", "unknown"),
]


@pytest.mark.parametrize(("ua", "family", "device"), CASES)
def test_describe_user_agent(ua: str | None, family: str, device: str) -> None:
    assert describe_user_agent(ua) == (family, device)


@pytest.mark.parametrize(("ua", "family", "device"), CASES)
def test_result_is_only_coarse_buckets(ua: str | None, family: str, device: str) -> None:
    result = describe_user_agent(ua)
    assert result[0] in BROWSER_FAMILIES
    assert result[1] in DEVICE_TYPES
    assert not ua or ua.strip() not in result


def test_huge_header_is_cheap() -> None:
    ua = CHROME_WIN + " " + "x(" * 200_000
    started = time.perf_counter()
    assert describe_user_agent(ua) == ("chrome", "desktop")
    assert time.perf_counter() - started < 0.1
