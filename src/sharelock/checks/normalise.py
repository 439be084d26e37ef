"""Normalisation of names and addresses before they are compared (docs/checks.md, "Normalisation").

The same function is applied to what the partner typed and to what the source printed, so each
step only has to map different spellings of one thing to one form:

1. case folded (`str.casefold`: "ß" becomes "ss"), then "œ", "æ" and a few other letters that
   Unicode does not decompose are spelled out ("oe", "ae"…);
2. accents dropped (NFKD, then every combining mark removed: "É" -> "e", "ç" -> "c");
3. every character that is neither a letter nor a digit (hyphens, apostrophes, dots, commas,
   slashes…) becomes a space, and runs of spaces collapse: what is left is a list of words.

Names then drop particles and family-name markers; addresses expand abbreviations, spell
number words as digits and drop "cedex". Nothing here raises: an empty result means there was
nothing to compare, and the comparison says so.
"""

from __future__ import annotations

import re
import unicodedata
from types import MappingProxyType

# Letters NFKD leaves whole, spelled the way French (and a few neighbours) spell them in ASCII.
_SPELLED_OUT = str.maketrans(
    {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")

# Particles of family names, ignored for comparison ("de La Fontaine" = "Fontaine"): French,
# and the Dutch, German, Italian, Spanish and Portuguese ones common in France.
NAME_PARTICLES = frozenset(
    {"de", "du", "des", "d", "le", "la", "les", "l", "van", "von", "der", "den", "ter", "ten",
     "zu", "da", "di", "del", "della", "dos", "das", "do", "y"}
)  # fmt: skip
# Words a portal puts between a birth name and a usage name ("Durand épouse Leroy").
FAMILY_NAME_MARKERS = frozenset({"epouse", "ep", "epse", "nee", "veuve", "vve", "dit", "dite"})

# Street-type and title abbreviations as the French post office (and people) write them.
ADDRESS_ABBREVIATIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "bd": "boulevard", "bld": "boulevard", "blvd": "boulevard", "boul": "boulevard",
        "av": "avenue", "ave": "avenue", "avn": "avenue",
        "r": "rue",
        "pl": "place",
        "ch": "chemin", "chem": "chemin",
        "imp": "impasse",
        "all": "allee",
        "rte": "route",
        "st": "saint", "ste": "sainte",
        "fg": "faubourg", "fbg": "faubourg",
        "qu": "quai", "qua": "quai",
        "sq": "square",
        "crs": "cours",
        "gal": "general", "gen": "general",
        "mal": "marechal",
        "pdt": "president",
        "dr": "docteur",
        "res": "residence",
    }
)  # fmt: skip
# Only the saints are abbreviated in city names ("St-Étienne"); "r" or "pl" there are not streets.
_CITY_ABBREVIATIONS = MappingProxyType({"st": "saint", "ste": "sainte"})
ADDRESS_PARTICLES = frozenset({"de", "du", "des", "d", "la", "le", "les", "l", "au", "aux", "a"})
HOUSE_NUMBER_SUFFIXES = frozenset({"bis", "ter", "quater", "quinquies"})
# A letter glued to the house number ("12b"): the usual shorthand of the suffixes above.
_SUFFIX_LETTERS = MappingProxyType({"b": "bis", "t": "ter", "q": "quater"})

_UNITS = MappingProxyType(
    {
        "zero": 0, "un": 1, "une": 1, "premier": 1, "premiere": 1, "deux": 2, "trois": 3,
        "quatre": 4, "cinq": 5, "six": 6, "sept": 7, "huit": 8, "neuf": 9, "dix": 10,
        "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16,
    }
)  # fmt: skip
_TENS = MappingProxyType(
    {"vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50, "soixante": 60}
)
_VINGT = frozenset({"vingt", "vingts"})
# "1er", "1re", "2e", "2eme", "3ème" (accent already gone), "2nd": the ordinal is the number.
_ORDINAL = re.compile(r"([0-9]+)(?:er|re|ere|e|eme|nd|nde)")
_DIGITS_THEN_LETTERS = re.compile(r"([0-9]+)([a-z]+)")
_CITY_NOISE = frozenset({"cedex", "arrondissement", "arr"})


def words(text: str) -> list[str]:
    """Steps 1 to 3: folded, accents dropped, split on everything but letters and digits."""
    folded = text.casefold().translate(_SPELLED_OUT)
    bare = "".join(
        char for char in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(char)
    )
    return _NOT_ALNUM.sub(" ", bare).split()


def _without(tokens: list[str], dropped: frozenset[str]) -> list[str]:
    """`tokens` less the `dropped` words; all of them if nothing else is left ("Le" is a name)."""
    kept = [token for token in tokens if token not in dropped]
    return kept or tokens


def given_names(text: str) -> tuple[str, ...]:
    """Given names as words: "Jean-Pierre" and "jean pierre" are ("jean", "pierre")."""
    return tuple(words(text))


def family_name(text: str) -> tuple[str, ...]:
    """A family name as words, particles and markers ("épouse", "née"…) left out:
    "de La Fontaine" is ("fontaine",), "Durand épouse Leroy" is ("durand", "leroy")."""
    tokens = words(text)
    return tuple(_without(_without(tokens, FAMILY_NAME_MARKERS), NAME_PARTICLES))


def family_name_spelled(text: str) -> str:
    """The family name's letters with its particles but no spaces ("delafontaine"), to see
    that "Delafontaine" is the same name written as one word."""
    return "".join(_without(words(text), FAMILY_NAME_MARKERS))


def postal_code(text: str) -> str:
    """Digits only: "75 006" and "F-75006" are "75006"."""
    return "".join(char for char in text if char in "0123456789")


def _split_numbers(tokens: list[str]) -> list[str]:
    """Ordinals become their number ("1er" -> "1"); digits glued to letters come apart
    ("12bis" -> "12", "bis")."""
    out: list[str] = []
    for token in tokens:
        ordinal = _ORDINAL.fullmatch(token)
        glued = _DIGITS_THEN_LETTERS.fullmatch(token)
        if ordinal:
            out.append(ordinal[1])
        elif glued:
            out.extend((glued[1], _SUFFIX_LETTERS.get(glued[2], glued[2])))
        else:
            out.append(token)
    return out


def _number_words(tokens: list[str]) -> list[str]:
    """Number words as digits, so that "rue du Quatre-Septembre" is "rue du 4 septembre" and
    "place du Huit-Mai" is "place du 8 mai"; compounds add up ("vingt et un" -> 21,
    "dix-huit" -> 18, "soixante-dix" -> 70) and "quatre-vingt(s)" multiplies (80)."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        value: int | None = None
        j = i
        while j < len(tokens):
            word = tokens[j]
            if word in _VINGT and value is not None and value < 20:
                value *= 20  # quatre-vingt(s)
            elif word in _TENS or word in _UNITS:
                value = (value or 0) + _TENS.get(word, 0) + _UNITS.get(word, 0)
            elif word == "et" and value is not None and j + 1 < len(tokens):
                if tokens[j + 1] not in _UNITS:
                    break  # "et" joins "vingt et un", not "rue Pierre et Marie Curie"
            else:
                break
            j += 1
        if value is None:
            out.append(tokens[i])
            i += 1
        else:
            out.append(str(value))
            i = j
    return out


def street(text: str) -> tuple[str, tuple[str, ...]]:
    """A street line as (house number, street words): abbreviations expanded, number words as
    digits, particles dropped. "128 bis Bd St-Germain" is ("128 bis", ("boulevard", "saint",
    "germain")); the house number is "" when the line does not start with one."""
    tokens = _split_numbers(words(text))
    number = ""
    if tokens and tokens[0].isdigit():
        number = str(int(tokens.pop(0)))  # "07" is 7
        if tokens and (
            tokens[0] in HOUSE_NUMBER_SUFFIXES
            or (len(tokens[0]) == 1 and tokens[0] not in ADDRESS_ABBREVIATIONS)
        ):
            number += " " + _SUFFIX_LETTERS.get(tokens[0], tokens[0])
            tokens.pop(0)
    expanded = [ADDRESS_ABBREVIATIONS.get(token, token) for token in tokens]
    return number, tuple(_without(_number_words(expanded), ADDRESS_PARTICLES))


def city(text: str) -> tuple[str, ...]:
    """A city as words: "St-" and "Ste-" spelled out, particles dropped, and "Cedex", an
    arrondissement ("Paris 6e", "Lyon 2e arrondissement") or any number left out."""
    tokens = [_CITY_ABBREVIATIONS.get(token, token) for token in _split_numbers(words(text))]
    kept = [token for token in tokens if token not in _CITY_NOISE and not token.isdigit()]
    return tuple(_without(kept, ADDRESS_PARTICLES))
