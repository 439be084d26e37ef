"""The consent screen's languages: message catalogues, the choice of language, and durations.

Every word the person reads comes from a gettext catalogue,
`web/locales/<lang>/LC_MESSAGES/messages.po`, read at run time with Babel's `read_po`: there is
no `.mo` to compile, so an editable install and a wheel both work from the `.po` files the
package ships. Each msgid is a symbolic key (`error.invalid_credentials`), not the English text,
and each msgstr the text in that language with `{name}` placeholders; symbolic msgids are a
known gettext practice for UI catalogues, where the English wording changes without touching the
code or the other catalogues. So `en` is a catalogue like any other.

To add a message: add the same msgid to every `locales/*/LC_MESSAGES/messages.po` (same
placeholders in each), then call `t("the.key", name=value)` in a template or `t("the.key")` in
`static/consent.js` or `static/rights.js`. No extraction or compile step follows: the keys are
not in the code's English, so there is nothing for `pybabel extract` to find. `test_i18n.py`
fails on a key missing from one language, on mismatched placeholders, on a fuzzy or empty entry,
and on a key a page uses that no catalogue holds.

The page picks its language from `?lang=` when it names a supported one, else from
`Accept-Language` (best q-value first, matched by Babel, `fr-CA` falling back to `fr`); no cookie
remembers it (the session cookie is the only cookie). The selected catalogue goes to the page's
script as JSON in a data attribute, so the script speaks the same language without a request of
its own. Durations are worded by Babel from CLDR data (unit names, plural rules, spacing), in a
unit chosen here, so the catalogues hold no `duration.*` messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import IO, Final, Literal

from babel.core import Locale, negotiate_locale
from babel.dates import format_date, format_timedelta
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

SUPPORTED: tuple[str, ...] = ("en", "fr")
DEFAULT = "en"
LANGUAGE_NAMES: Mapping[str, str] = MappingProxyType({"en": "English", "fr": "Français"})
DOMAIN: Final = "messages"

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*")
_MAX_ACCEPT_LANGUAGE = 512  # a header longer than this is not parsed, only defaulted

_Unit = Literal["month", "day", "hour", "minute", "second"]
_DAY = 86400
# Babel's own length of each unit, so that `count * length` comes back as exactly `count`.
_UNIT_SECONDS: Mapping[_Unit, int] = MappingProxyType(
    {"month": 30 * _DAY, "day": _DAY, "hour": 3600, "minute": 60, "second": 1}
)


class MissingMessage(KeyError):
    """A key asked for that the catalogue does not hold: a bug, caught by the tests."""


def catalogue_path(lang: str) -> str:
    """Where `lang`'s catalogue lives in the package, relative to `sharelock/web`."""
    return f"locales/{lang}/LC_MESSAGES/{DOMAIN}.po"


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The messages of `lang`, read once from the package's `.po` file."""
    if lang not in SUPPORTED:
        raise ValueError(f"unsupported language {lang!r}")
    source = resources.files("sharelock.web").joinpath(*catalogue_path(lang).split("/"))
    with source.open("rb") as po:
        return read_messages(po, lang)


def read_messages(po: IO[bytes], lang: str) -> Mapping[str, str]:
    """The `msgid -> msgstr` of a `.po` file, as gettext would use them."""
    # abort_invalid: a malformed file fails here, not as a silently shorter catalogue.
    parsed = read_po(po, locale=lang, domain=DOMAIN, ignore_obsolete=True, abort_invalid=True)
    messages: dict[str, str] = {}
    for message in parsed:
        if not message.id:  # the header entry
            continue
        if not isinstance(message.id, str) or not isinstance(message.string, str):
            # Plurals are not used: counts go through `{count}` in one-form sentences, and the
            # one plural-sensitive wording (durations) comes from CLDR through Babel.
            raise ValueError(f"{lang}: plural entry {message.id!r} is not supported")
        # Like msgfmt, a fuzzy or untranslated entry is not a translation: left out, so that
        # `t()` raises MissingMessage rather than showing a guess or a bare key.
        if message.fuzzy or not message.string:
            continue
        messages[message.id] = message.string
    return MappingProxyType(messages)


def interpolate(text: str, params: Mapping[str, object]) -> str:
    """Replace `{name}` by `params[name]`; unknown names are left as written."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(params[name]) if name in params else match.group(0)

    return _PLACEHOLDER.sub(substitute, text)


def _ranked_tags(header: str | None) -> list[str]:
    """The language tags of an `Accept-Language` header as written, best first (RFC 9110
    §12.5.4; equal q-values keep their order); entries with q=0 are refused, malformed entries
    skipped. Babel matches tags but does not parse the header, hence this."""
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
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]


def parse_accept_language(header: str | None) -> list[str]:
    """The primary language subtags of an `Accept-Language` header, best first, lowercase."""
    return [tag.split("-")[0].lower() for tag in _ranked_tags(header)]


def negotiate(requested: str | None, accept_language: str | None) -> str:
    """`?lang=` if supported, else the best supported language of `Accept-Language`, else
    English."""
    if requested in SUPPORTED:
        return requested
    preferred = _ranked_tags(accept_language)
    if "*" in preferred:
        # "any other language": the ones ranked below it are not preferred over the default.
        preferred = preferred[: preferred.index("*")]
    # No aliases: Babel's default ones map `fr` to `fr_FR`, which no catalogue here is.
    match = negotiate_locale(preferred, SUPPORTED, sep="-", aliases={})
    return match.lower() if match else DEFAULT


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
        """A retention limit in words: "1 hour", "72 hours", "13 months", "1 heure"."""
        return _duration_words(self.lang, seconds)


# The consent page words five retention limits, from the settings, on every render: a few
# languages times a few values, each worded by Babel once (tens of microseconds each).
@lru_cache(maxsize=256)
def _duration_words(lang: str, seconds: int) -> str:
    count, unit = _duration_unit(seconds)
    # The unit is ours (Babel would say "3 days" for 72 hours and "1 year" for 13 months,
    # rounding away the limit the law or the partner contract states); granularity=unit
    # with an infinite threshold makes Babel word exactly `count` of that unit.
    return format_timedelta(
        timedelta(seconds=count * _UNIT_SECONDS[unit]),
        granularity=unit,
        threshold=math.inf,
        format="long",
        locale=lang,
    )


def display_value(field: str, value: object, t: Translator) -> str | None:
    """How a collected value reads in the person's language, for the review step only (the
    partner receives the value as collected): a gender in words, a date as the language
    writes it, a country by its name, an amount or a number of shares with the language's
    separators ("38 512", "2,5"). None when the value is shown as it is (a tax year is not an
    amount: "2025", never "2 025")."""
    text = str(value)
    if field == "gender":
        return t.get(f"value.gender.{text}", text)
    if field == "birthdate":
        try:
            return format_date(date.fromisoformat(text), format="long", locale=t.lang)
        except ValueError:
            return None
    if field == "country":
        name = Locale.parse(t.lang).territories.get(text.upper())
        return str(name) if name else None
    if field in _NUMBERS:
        try:
            number = Decimal(text)
        except InvalidOperation:
            return None
        return str(format_decimal(number, locale=t.lang)) if number.is_finite() else None
    return None


# Collected values that are quantities, written with the language's separators on review.
_NUMBERS = frozenset({"reference_income", "household_shares"})


def _duration_unit(seconds: int) -> tuple[int, _Unit]:
    seconds = max(0, int(seconds))
    if seconds >= 365 * _DAY:
        return round(seconds / (30.4375 * _DAY)), "month"
    if seconds % _DAY == 0 and seconds >= 4 * _DAY:
        return seconds // _DAY, "day"
    if seconds % 3600 == 0 and seconds >= 3600:
        return seconds // 3600, "hour"
    if seconds % 60 == 0 and seconds >= 60:
        return seconds // 60, "minute"
    return seconds, "second"
