"""The identity document: its zone read and checked, and compared with the identity the data
source gave.

Names are compared with `sharelock.checks.compare_names`, the same normalisation and categories
as the partners' `name_match` check (docs/checks.md). A zone spells names in capitals without
accents, so "ÉLÉONORE" and "ELEONORE" compare equal; what a zone cannot hold (a name cut at
the field's length, a German "UE" for "Ü") comes out as `close_match` or worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sharelock.checks import Category, compare_names
from sharelock.identity.errors import MrzNotFound
from sharelock.identity.images import RgbImage
from sharelock.identity.mrz import MrzData, MrzFormatError, parse
from sharelock.identity.mrz_reader import MrzReader

_STABLE_READINGS = 3  # the same reading this many times is the document's, valid or not


@dataclass(frozen=True, repr=False)
class HeldIdentity:
    """The identity the data source gave (personal data: no values in `repr`)."""

    given_name: str
    family_name: str
    birthdate: date | None

    def __repr__(self) -> str:
        return "HeldIdentity(…)"


def read_zone(reader: MrzReader, image: RgbImage, today: date) -> MrzData:
    """The document's zone: the first reading whose check digits all hold, or else the reading
    seen most often (a document whose check digits are wrong is read, and reported so)."""
    seen: dict[tuple[str, ...], tuple[int, MrzData]] = {}
    for lines in reader.read(image):
        try:
            data = parse(lines, today)
        except MrzFormatError:
            continue
        if data.check_digits_valid:
            return data
        count = seen.get(lines, (0, data))[0] + 1
        if count >= _STABLE_READINGS:
            return data
        seen[lines] = (count, data)
    if not seen:
        raise MrzNotFound()
    return max(seen.values(), key=lambda counted: counted[0])[1]


def expiry_outcome(data: MrzData, today: date) -> str:
    if data.expiry is None:
        return "unknown"
    return "valid" if data.expiry >= today else "expired"


def name_category(data: MrzData, held: HeldIdentity) -> Category:
    return compare_names(data.given_names, data.family_name, held.given_name, held.family_name)


def birthdate_matches(data: MrzData, held: HeldIdentity) -> bool:
    return data.birthdate is not None and data.birthdate == held.birthdate
