"""Comparison of names and addresses, answered in the Verification-of-Payee categories.

Both sides are normalised first (`checks.normalise`), then compared part by part (given names
and family name; house number, street, postal code and city). Each part is

- `EQUAL`: the same words in the same order;
- `CLOSE`: the same words in another order, the same letters spaced differently
  ("Delafontaine" / "de La Fontaine"), or one side's words all among the other's (a missing
  second given name, one half of a compound or married name, "République" for "rue de la
  République");
- `SPELLING`: a small edit distance (optimal string alignment, so two letters swapped count as
  one edit): none up to 3 letters, one up to 8, two beyond;
- `DIFFERENT`: anything else.

Every part `EQUAL` is `MATCH`; no part `DIFFERENT` and at most one part `SPELLING` is
`CLOSE_MATCH`; given and family names swapped (each equal to the other) is `CLOSE_MATCH`;
anything else is `NO_MATCH`. For addresses, a different postal code is `NO_MATCH` at once, and
house numbers compare on their own terms: the same is `EQUAL`, one missing or one with "bis"
(ter…) and the other without is `CLOSE`, two different numbers are `DIFFERENT`.
"""

from __future__ import annotations

from enum import Enum, StrEnum

from rapidfuzz.distance import OSA

from sharelock.checks import normalise


class Category(StrEnum):
    """The Verification-of-Payee answers (EPC VoP rulebook), as the JSON values partners get."""

    MATCH = "match"
    CLOSE_MATCH = "close_match"
    NO_MATCH = "no_match"
    CHECK_NOT_POSSIBLE = "check_not_possible"  # the source did not give the value


class Relation(Enum):
    EQUAL = "equal"
    CLOSE = "close"
    SPELLING = "spelling"
    DIFFERENT = "different"


def allowed_edits(length: int) -> int:
    """How many edits still count as a spelling slip in a word of `length` letters."""
    if length <= 3:
        return 0
    return 1 if length <= 8 else 2


def relate(typed: tuple[str, ...], held: tuple[str, ...]) -> Relation:
    """How two normalised word lists relate (see the module docstring)."""
    if not typed or not held:
        return Relation.DIFFERENT
    if typed == held:
        return Relation.EQUAL
    joined_typed, joined_held = "".join(typed), "".join(held)
    if (
        sorted(typed) == sorted(held)
        or joined_typed == joined_held
        or set(typed) <= set(held)
        or set(held) <= set(typed)
    ):
        return Relation.CLOSE
    limit = allowed_edits(max(len(joined_typed), len(joined_held)))
    if limit and OSA.distance(joined_typed, joined_held, score_cutoff=limit) <= limit:
        return Relation.SPELLING
    return Relation.DIFFERENT


def combine(relations: tuple[Relation, ...]) -> Category:
    """Parts' relations -> the answer: all equal, or close enough, or not."""
    if all(relation is Relation.EQUAL for relation in relations):
        return Category.MATCH
    if Relation.DIFFERENT in relations or relations.count(Relation.SPELLING) > 1:
        return Category.NO_MATCH
    return Category.CLOSE_MATCH


def _family_relation(typed: str, held: str) -> Relation:
    relation = relate(normalise.family_name(typed), normalise.family_name(held))
    if relation in (Relation.SPELLING, Relation.DIFFERENT) and (
        normalise.family_name_spelled(typed) == normalise.family_name_spelled(held)
    ):
        return Relation.CLOSE  # "Delafontaine" for "de La Fontaine"
    return relation


def compare_names(
    typed_given: str, typed_family: str, held_given: str, held_family: str
) -> Category:
    """The partner's given and family names against the source's."""
    given = relate(normalise.given_names(typed_given), normalise.given_names(held_given))
    answer = combine((given, _family_relation(typed_family, held_family)))
    if answer is Category.NO_MATCH and (
        normalise.family_name(typed_given) == normalise.family_name(held_family)
        and normalise.family_name(typed_family) == normalise.family_name(held_given)
    ):
        return Category.CLOSE_MATCH  # given and family names swapped
    return answer


def _house_number_relation(typed: str, held: str) -> Relation:
    if typed == held:
        return Relation.EQUAL
    if not typed or not held:
        return Relation.CLOSE  # one side has no house number
    same_number = typed.split()[0] == held.split()[0]
    if same_number and (" " not in typed or " " not in held):
        return Relation.CLOSE  # "128" for "128 bis"
    return Relation.DIFFERENT


def compare_addresses(typed: tuple[str, str, str], held: tuple[str, str, str]) -> Category:
    """(street, postal code, city) typed by the partner against the source's."""
    typed_street, typed_postal, typed_city = typed
    held_street, held_postal, held_city = held
    if normalise.postal_code(typed_postal) != normalise.postal_code(held_postal):
        return Category.NO_MATCH
    typed_number, typed_words = normalise.street(typed_street)
    held_number, held_words = normalise.street(held_street)
    return combine(
        (
            _house_number_relation(typed_number, held_number),
            relate(typed_words, held_words),
            relate(normalise.city(typed_city), normalise.city(held_city)),
        )
    )
