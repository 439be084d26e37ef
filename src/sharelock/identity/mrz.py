"""Machine-readable zones (ICAO Doc 9303): layouts, check digits, dates and names.

Four layouts: TD3 (passports, 2 x 44), TD1 (identity cards, 3 x 30: the French card of 2021),
TD2 (2 x 36) and the French identity card of 1988-2021 (2 x 36, its own layout: surname on line
1, card number, given names and birthdate on line 2, and no expiry date: it is derived from the
issue month in the card number).

OCR confuses letters and digits that look alike ("O" and "0", "S" and "5"). Each layout says
which positions are digits and which letters, and a misread character in a position of the other
class is mapped back before any check digit is computed (`_DIGIT_FOR` / `_LETTER_FOR`); the
check digits then decide. Alphanumeric fields (document numbers) are left as read: their check
digit is what protects them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

_WEIGHTS = (7, 3, 1)
_DIGIT_FOR = str.maketrans(
    {
        "O": "0",
        "Q": "0",
        "D": "0",
        "U": "0",
        "I": "1",
        "L": "1",
        "Z": "2",
        "S": "5",
        "G": "6",
        "T": "7",
        "B": "8",
    }
)
_LETTER_FOR = str.maketrans({"0": "O", "1": "I", "2": "Z", "5": "S", "6": "G", "8": "B"})


def check_digit(field: str) -> str:
    """The ICAO 9303 check digit of `field` (digits as themselves, A=10 … Z=35, '<' = 0)."""
    total = 0
    for position, char in enumerate(field):
        if char.isdigit():
            value = int(char)
        elif "A" <= char <= "Z":
            value = ord(char) - ord("A") + 10
        else:
            value = 0
        total += value * _WEIGHTS[position % 3]
    return str(total % 10)


class MrzFormat(StrEnum):
    TD1 = "td1"
    TD2 = "td2"
    TD3 = "td3"
    FRENCH_ID_1988 = "fr_id_1988"


class DocumentType(StrEnum):
    """OpenID Identity Assurance `document_details.type` values."""

    PASSPORT = "passport"
    IDCARD = "idcard"
    OTHER = "travel_document"


@dataclass(frozen=True)
class CheckDigit:
    field: str  # "document_number", "birthdate", "expiry", "optional", "composite"
    valid: bool


@dataclass(frozen=True, repr=False)
class MrzData:
    """One zone, read. Personal values (names, number, dates) stay out of `repr`."""

    format: MrzFormat
    document_code: str  # "P", "ID", "I<"…
    issuing_country: str  # ICAO code: ISO 3166-1 alpha-3, or "D" for Germany
    document_number: str
    family_name: str
    given_names: str
    birthdate: date | None  # None when the zone says the day or month is unknown
    expiry: date | None
    sex: str
    check_digits: tuple[CheckDigit, ...]

    @property
    def check_digits_valid(self) -> bool:
        return all(check.valid for check in self.check_digits)

    @property
    def document_type(self) -> DocumentType:
        if self.document_code.startswith("P"):
            return DocumentType.PASSPORT
        if self.document_code[0] in "IAC":
            return DocumentType.IDCARD
        return DocumentType.OTHER

    def __repr__(self) -> str:
        return (
            f"MrzData(format={self.format.value}, issuing_country={self.issuing_country!r}, "
            f"check_digits_valid={self.check_digits_valid})"
        )


class MrzFormatError(ValueError):
    """The lines do not have the shape of any supported zone (fixed text, never the lines)."""


def _digits(text: str) -> str:
    return text.translate(_DIGIT_FOR)


def _letters(text: str) -> str:
    return text.translate(_LETTER_FOR)


def _names(field: str) -> tuple[str, str]:
    """'MARTIN<<ALICE<MARIE<<<' -> ('MARTIN', 'ALICE MARIE')."""
    family, _, given = _letters(field).rstrip("<").partition("<<")
    return " ".join(family.replace("<", " ").split()), " ".join(given.replace("<", " ").split())


def _date(yymmdd: str, *, birth: bool, today: date) -> date | None:
    """A zone date. Birthdates take the latest century not in the future; expiry dates the
    century that puts them within 50 years of today (a document lasts 10 to 15)."""
    if not yymmdd.isdigit():
        return None  # '<<' for an unknown day or month
    year, month, day = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    century = today.year // 100 * 100
    full = century + year
    if birth and full > today.year:
        full -= 100
    if not birth and full < today.year - 50:
        full += 100
    try:
        return date(full, month, day)
    except ValueError:
        return None


def _check(name: str, field: str, digit: str) -> CheckDigit:
    return CheckDigit(name, digit == check_digit(field))


def _optional_check(name: str, field: str, digit: str) -> CheckDigit:
    # TD3: an empty personal number may carry '<' as its check digit.
    if digit == "<" and set(field) <= {"<"}:
        return CheckDigit(name, True)
    return _check(name, field, digit)


def parse(lines: tuple[str, ...], today: date) -> MrzData:
    """The zone's fields, with every check digit verified; `MrzFormatError` if no layout fits."""
    shape = tuple(len(line) for line in lines)
    if shape == (44, 44):
        return _td3(*lines, today=today)
    if shape == (30, 30, 30):
        return _td1(*lines, today=today)
    if shape == (36, 36):
        if lines[0].startswith("IDFRA"):
            return _french_1988(*lines, today=today)
        return _td2(*lines, today=today)
    raise MrzFormatError("the lines have the shape of no supported zone")


def _td3(first: str, second: str, *, today: date) -> MrzData:
    number, number_check = second[0:9], _digits(second[9])
    birth, birth_check = _digits(second[13:19]), _digits(second[19])
    expiry, expiry_check = _digits(second[21:27]), _digits(second[27])
    optional, optional_check = second[28:42], _digits(second[42]) if second[42] != "<" else "<"
    composite = number + number_check + birth + birth_check + expiry + expiry_check
    composite += optional + optional_check
    family, given = _names(first[5:44])
    return MrzData(
        format=MrzFormat.TD3,
        document_code=_letters(first[0:2]).rstrip("<") or "P",
        issuing_country=_letters(first[2:5]).rstrip("<"),
        document_number=number.rstrip("<"),
        family_name=family,
        given_names=given,
        birthdate=_date(birth, birth=True, today=today),
        expiry=_date(expiry, birth=False, today=today),
        sex=second[20],
        check_digits=(
            _check("document_number", number, number_check),
            _check("birthdate", birth, birth_check),
            _check("expiry", expiry, expiry_check),
            _optional_check("optional", optional, optional_check),
            _check("composite", composite, _digits(second[43])),
        ),
    )


def _td1(first: str, second: str, third: str, *, today: date) -> MrzData:
    number, number_check = first[5:14], first[14]
    optional = first[15:30]
    if number_check == "<":
        # A number longer than 9: it goes on in the optional field, its check digit last.
        overflow = optional.split("<", 1)[0]
        number, number_check = number + overflow[:-1], overflow[-1:] or "<"
    birth, birth_check = _digits(second[0:6]), _digits(second[6])
    expiry, expiry_check = _digits(second[8:14]), _digits(second[14])
    composite = first[5:30] + birth + birth_check + expiry + expiry_check + second[18:29]
    family, given = _names(third)
    return MrzData(
        format=MrzFormat.TD1,
        document_code=_letters(first[0:2]),
        issuing_country=_letters(first[2:5]).rstrip("<"),
        document_number=number.rstrip("<"),
        family_name=family,
        given_names=given,
        birthdate=_date(birth, birth=True, today=today),
        expiry=_date(expiry, birth=False, today=today),
        sex=second[7],
        check_digits=(
            _check("document_number", number, _digits(number_check)),
            _check("birthdate", birth, birth_check),
            _check("expiry", expiry, expiry_check),
            _check("composite", composite, _digits(second[29])),
        ),
    )


def _td2(first: str, second: str, *, today: date) -> MrzData:
    number, number_check = second[0:9], _digits(second[9])
    birth, birth_check = _digits(second[13:19]), _digits(second[19])
    expiry, expiry_check = _digits(second[21:27]), _digits(second[27])
    composite = number + number_check + birth + birth_check + expiry + expiry_check
    composite += second[28:35]
    family, given = _names(first[5:36])
    return MrzData(
        format=MrzFormat.TD2,
        document_code=_letters(first[0:2]),
        issuing_country=_letters(first[2:5]).rstrip("<"),
        document_number=number.rstrip("<"),
        family_name=family,
        given_names=given,
        birthdate=_date(birth, birth=True, today=today),
        expiry=_date(expiry, birth=False, today=today),
        sex=second[20],
        check_digits=(
            _check("document_number", number, number_check),
            _check("birthdate", birth, birth_check),
            _check("expiry", expiry, expiry_check),
            _check("composite", composite, _digits(second[35])),
        ),
    )


def _french_1988(first: str, second: str, *, today: date) -> MrzData:
    """IDFRA + surname (25) + office (6) / number (12) + check + given names (14) + birth (6)
    + check + sex + a check digit over both lines."""
    number, number_check = _digits(second[0:4]) + second[4:12], _digits(second[12])
    birth, birth_check = _digits(second[27:33]), _digits(second[33])
    family = " ".join(_letters(first[5:30]).replace("<", " ").split())
    given = " ".join(
        _letters(second[13:27]).rstrip("<").replace("<<", " ").replace("<", " ").split()
    )
    birthdate = _date(birth, birth=True, today=today)
    return MrzData(
        format=MrzFormat.FRENCH_ID_1988,
        document_code="ID",
        issuing_country="FRA",
        document_number=number,
        family_name=family,
        given_names=given,
        birthdate=birthdate,
        expiry=_french_1988_expiry(number[:4], birthdate, today),
        sex=second[34],
        check_digits=(
            _check("document_number", number, number_check),
            _check("birthdate", birth, birth_check),
            _check("composite", first + second[:35], _digits(second[35])),
        ),
    )


def _french_1988_expiry(issued_yymm: str, birthdate: date | None, today: date) -> date | None:
    """The old card carries its issue month (the number's first four digits), not its expiry:
    10 years for a minor, 15 for an adult (10, extended by 5 by the decree of 2013 for cards
    issued to adults from 2004; cards from before 2004 have all expired)."""
    if not issued_yymm.isdigit() or birthdate is None:
        return None
    year, month = 2000 + int(issued_yymm[:2]), int(issued_yymm[2:])
    if year > today.year:  # the card format dates from 1988: 88 is 1988
        year -= 100
    if not 1 <= month <= 12:
        return None
    adult = (year, month) >= (birthdate.year + 18, birthdate.month)
    valid_years = 15 if adult and year >= 2004 else 10
    return date(year + valid_years, month, 1)
