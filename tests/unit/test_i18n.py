"""The consent screen's catalogues and choice of language."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from sharelock.audit import EventType
from sharelock.connectors.base import Outcome
from sharelock.connectors.sources import PORTALS
from sharelock.rights.service import HIDDEN_EVENTS
from sharelock.scopes import FIELD_LABELS, SCOPES
from sharelock.web import i18n

WEB = Path(i18n.__file__).parent
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# t("key") / t('key') in templates, t("key") in the script.
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+(?:\.[A-Za-z_]+)+)["']""")
# One per entry (obsolete ones start with `#~`); a wrapped msgid shows here as `msgid ""`.
MSGID_LINE = re.compile(r'^msgid "(.*)"$', re.MULTILINE)


@pytest.mark.parametrize("lang", i18n.SUPPORTED)
def test_each_catalogue_is_a_clean_po_file(lang: str) -> None:
    path = WEB / i18n.catalogue_path(lang)
    text = path.read_text("utf-8")
    with path.open("rb") as po:
        catalog = read_po(po, locale=lang, domain=i18n.DOMAIN, abort_invalid=True)
    assert str(catalog.locale) == lang
    assert not catalog.fuzzy, "the header is marked fuzzy"
    assert not catalog.obsolete, sorted(catalog.obsolete)
    # Babel merges a repeated msgid into one entry (first msgstr wins): count the lines instead.
    ids = MSGID_LINE.findall(text)
    repeated = sorted(key for key, n in Counter(ids).items() if n > 1 and key)
    assert not repeated and len(ids) == len(catalog) + 1, repeated  # +1: the header
    for message in catalog:
        if message.id:
            assert isinstance(message.id, str), message.id  # no plural entries
            assert not message.fuzzy and message.string, message.id
    # Babel's checkers (plural count, python-format), the ones `pybabel compile` reports.
    assert [(m.id, errors) for m, errors in catalog.check()] == []
    # Every entry reaches the catalogue the pages use.
    assert len(i18n.catalogue(lang)) == len(catalog)


def test_only_supported_languages_have_catalogues() -> None:
    found = {path.parent.parent.name for path in (WEB / "locales").glob("*/LC_MESSAGES/*.po")}
    assert found == set(i18n.SUPPORTED)
    assert not list((WEB / "locales").glob("*.json")), "the catalogues are .po files now"


def test_fuzzy_and_untranslated_entries_are_not_used() -> None:
    po = io.BytesIO(
        b'msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\n'
        b'msgid "a.done"\nmsgstr "Done"\n\n'
        b'#, fuzzy\nmsgid "a.guess"\nmsgstr "Guessed"\n\n'
        b'msgid "a.todo"\nmsgstr ""\n'
    )
    assert dict(i18n.read_messages(po, "en")) == {"a.done": "Done"}


def test_every_language_has_the_same_messages_with_the_same_placeholders() -> None:
    english = i18n.catalogue("en")
    for lang in i18n.SUPPORTED:
        messages = i18n.catalogue(lang)
        assert set(messages) == set(english), lang
        for key, text in messages.items():
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(english[key])), key
            assert text.strip() == text and text, key


def test_every_message_the_page_asks_for_exists() -> None:
    scripts = sorted((WEB / "static").glob("*.js"))
    sources = [*scripts, *sorted((WEB / "templates").glob("*.html"))]
    used = {key for path in sources for key in LITERAL_KEY.findall(path.read_text("utf-8"))}
    assert "review.approve" in used  # the pattern does find them
    # Keys the script builds from what the API returns.
    used |= {
        f"error.{o.value}" for o in Outcome if o not in (Outcome.COLLECTED, Outcome.OTP_REQUIRED)
    }
    used |= {f"error.{code}" for code in ("network", "conflict", "forbidden", "crypto")}
    used |= {f"error.{code}" for code in ("invalid_request", "temporarily_unavailable")}
    used |= {f"field.{name}" for name in FIELD_LABELS}
    used |= {f"scope.{scope}" for scope in SCOPES}
    used |= {f"login_label.{spec.info.login_label}" for spec in PORTALS.values()}
    # The rights page names every kind of row a person may see.
    used |= {f"rights.event.{event.value}" for event in EventType if event not in HIDDEN_EVENTS}
    for lang in i18n.SUPPORTED:
        missing = used - set(i18n.catalogue(lang))
        assert not missing, f"{lang}: {sorted(missing)}"


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        (None, None, "en"),
        (None, "fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        (None, "de-DE,de;q=0.9,fr;q=0.5,en;q=0.4", "fr"),
        (None, "en;q=0.3, fr;q=0.7", "fr"),
        (None, "fr;q=0, en", "en"),
        (None, "de, *", "en"),
        (None, "fr-CA", "fr"),
        (None, "FR-ca", "fr"),
        (None, "zh-Hant-TW, fr;q=0.1", "fr"),
        (None, "*, fr", "en"),
        (None, "garbage;;;, ;q=abc", "en"),
        (None, "fr;q=2", "en"),
        (None, "x" * 600, "en"),
        ("en", "fr-FR", "en"),
        ("fr", None, "fr"),
        ("de", "fr", "fr"),
        ("", "fr", "fr"),
    ],
)
def test_language_from_the_switch_then_accept_language(
    query: str | None, header: str | None, expected: str
) -> None:
    assert i18n.negotiate(query, header) == expected


@pytest.mark.parametrize(
    ("lang", "seconds", "expected"),
    [
        ("en", 3600, "1 hour"),
        # Babel words durations from CLDR, which puts a no-break space between the number and
        # a French unit, as the French catalogue does before ":" and "?".
        ("fr", 3600, "1\u00a0heure"),
        ("fr", 0, "0\u00a0seconde"),
        ("en", 0, "0 seconds"),
        ("en", 5, "5 seconds"),
        ("en", 1, "1 second"),
        ("en", 60, "1 minute"),
        ("en", 360, "6 minutes"),
        ("fr", 360, "6 minutes"),  # CLDR's French minute pattern has a plain space
        ("en", 72 * 3600, "72 hours"),
        ("en", 120 * 86400, "120 days"),
        ("en", 396 * 86400, "13 months"),
        ("fr", 396 * 86400, "13\u00a0mois"),
        ("fr", 120 * 86400, "120\u00a0jours"),
        ("en", 90, "90 seconds"),
    ],
)
def test_retention_limits_in_words(lang: str, seconds: int, expected: str) -> None:
    assert i18n.Translator(lang).duration(seconds) == expected


def test_a_missing_message_is_a_bug_not_a_blank() -> None:
    t = i18n.Translator("en")
    with pytest.raises(i18n.MissingMessage):
        t("no.such.key")
    assert t.get("field.unknown_new_field", "New field") == "New field"
    assert t("request.heading", partner="Demo Shop") == "Demo Shop asks for your data"
    # Placeholders are filled as text; escaping is the template's job (autoescape).
    assert t("request.heading", partner="<b>") == "<b> asks for your data"


@pytest.mark.parametrize(
    ("lang", "field", "value", "expected"),
    [
        ("fr", "reference_income", "38512", "38\u202f512"),
        ("en", "reference_income", "38512", "38,512"),
        ("fr", "household_shares", "2.5", "2,5"),
        ("en", "household_shares", "2.5", "2.5"),
        ("fr", "tax_year", "2025", None),  # a year, not an amount: shown as it is
        ("fr", "household_shares", "deux", None),  # not a number: shown as collected
        ("fr", "household_shares", "NaN", None),
    ],
)
def test_quantities_read_with_the_languages_separators(
    lang: str, field: str, value: str, expected: str | None
) -> None:
    assert i18n.display_value(field, value, i18n.Translator(lang)) == expected
