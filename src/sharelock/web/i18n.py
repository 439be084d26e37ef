"""The consent screen's languages: message catalogues, the choice of language, and durations.

Every word the person reads comes from `web/locales/<lang>.json` (flat `key -> text`, with
`{name}` placeholders). The page picks its language from `?lang=` when it names a supported one,
else from `Accept-Language`; no cookie remembers it (the session cookie is the only cookie). The
selected catalogue goes to the page's script as JSON in a data attribute, so the script speaks
the same language without a request of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType

SUPPORTED: tuple[str, ...] = ("en", "fr")
DEFAULT = "en"
LANGUAGE_NAMES: Mapping[str, str] = MappingProxyType({"en": "English", "fr": "Français"})

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*")
_MAX_ACCEPT_LANGUAGE = 512  # a header longer than this is not parsed, only defaulted


class MissingMessage(KeyError):
    """A key asked for that the catalogue does not hold: a bug, caught by the tests."""


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The messages of `lang`, read once from the package."""
    if lang not in SUPPORTED:
        raise ValueError(f"unsupported language {lang!r}")
    text = resources.files("sharelock.web").joinpath("locales", f"{lang}.json").read_text("utf-8")
    messages = json.loads(text)
    if not isinstance(messages, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in messages.items()
    ):
        raise ValueError(f"locales/{lang}.json must map keys to strings")
    return MappingProxyType(messages)


def interpolate(text: str, params: Mapping[str, object]) -> str:
    """Replace `{name}` by `params[name]`; unknown names are left as written."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(params[name]) if name in params else match.group(0)

    return _PLACEHOLDER.sub(substitute, text)


def parse_accept_language(header: str | None) -> list[str]:
    """The primary language subtags of an `Accept-Language` header, best first (RFC 9110
    §12.5.4); entries with q=0 are refused, malformed entries skipped."""
    if not header or len(header) > _MAX_ACCEPT_LANGUAGE:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, entry in enumerate(header.split(",")):
        tag, _, params = entry.strip().partition(";")
        tag = tag.strip()
        if not _TAG.fullmatch(tag):
            continue
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                continue
            if not 0 <= quality <= 1:
                continue
        if quality > 0:
            ranked.append((-quality, index, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(requested: str | None, accept_language: str | None) -> str:
    """`?lang=` if supported, else the best supported language of `Accept-Language`, else
    English."""
    if requested in SUPPORTED:
        return requested
    for tag in parse_accept_language(accept_language):
        if tag in SUPPORTED:
            return tag
        if tag == "*":
            return DEFAULT
    return DEFAULT


@dataclass(frozen=True, slots=True)
class Translator:
    """`t("key", name=value)` in templates and code."""

    lang: str

    @property
    def messages(self) -> Mapping[str, str]:
        return catalogue(self.lang)

    def __call__(self, key: str, **params: object) -> str:
        try:
            text = self.messages[key]
        except KeyError:
            raise MissingMessage(f"{self.lang}: no message {key!r}") from None
        return interpolate(text, params)

    def get(self, key: str, default: str, **params: object) -> str:
        """A message that may not exist (a field or label a newer data source brings)."""
        text = self.messages.get(key)
        return interpolate(text, params) if text is not None else default

    def duration(self, seconds: int) -> str:
        """A retention limit in words: "1 hour", "72 hours", "13 months", "60 seconds"."""
        count, unit = _duration_unit(seconds)
        form = "one" if count == 1 or (count == 0 and self.lang == "fr") else "other"
        return self(f"duration.{unit}.{form}", count=count)


def _duration_unit(seconds: int) -> tuple[int, str]:
    seconds = max(0, int(seconds))
    day = 86400
    if seconds >= 365 * day:
        return round(seconds / (30.4375 * day)), "month"
    if seconds % day == 0 and seconds >= 4 * day:
        return seconds // day, "day"
    if seconds % 3600 == 0 and seconds >= 3600:
        return seconds // 3600, "hour"
    if seconds % 60 == 0 and seconds >= 60:
        return seconds // 60, "minute"
    return seconds, "second"
