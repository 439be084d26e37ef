"""The fictitious people behind the sandbox accounts, with French data that passes real checks.

Every IBAN here is computed (RIB key, then ISO 13616 check digits) rather than typed, so the
numbers are valid without being anyone's account; the bank code 99990 and the BIC institution
SBOX belong to no real bank. `BROKEN` is the one exception on purpose: each of its categories
holds at least one value a careful connector must reject. This module is deliberately separate
from `sharelock.connectors.validation`: the sandbox plays a third-party portal, and computing its
numbers independently means a bug in the validator cannot hide behind the same bug here.

docs/sandbox.md lists these people; keep the two in step.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

SANDBOX_BANK_CODE = "99990"


def _mod97(text: str) -> int:
    return int("".join(str(int(char, 36)) for char in text)) % 97


def french_iban(bank: str, branch: str, account: str) -> str:
    """A valid French IBAN for a RIB (bank 5 digits, branch 5 digits, account 11 digits)."""
    key = 97 - (int(bank) * 89 + int(branch) * 15 + int(account) * 3) % 97
    bban = f"{bank}{branch}{account}{key:02d}"
    check = 98 - _mod97(bban + "FR00")
    return f"FR{check:02d}{bban}"


@dataclass(frozen=True, slots=True)
class TaxNotice:
    tax_year: str  # year of the income the notice is about
    reference_income: int  # euros
    household_shares: str  # as printed, French decimal comma
    notice_reference: str  # 13 characters


@dataclass(frozen=True, slots=True)
class Person:
    """Everything any sandbox source may know about one person, in canonical form; the portals
    decide how to print it (French dates, grouped IBAN, national phone format…)."""

    family_name: str
    given_name: str
    civility: str  # "Mme" or "M.", as French portals print the gender
    birthdate: str  # ISO yyyy-mm-dd
    birthplace: str
    street: str
    postal_code: str
    city: str
    country: str
    phone: str  # French national format
    email: str
    iban: str
    bic: str
    tax: TaxNotice
    delivery_point: str = "00000000000000"  # energy: PDL, 14 digits (not a shared field)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


ALICE = Person(
    family_name="Martin",
    given_name="Alice",
    civility="Mme",
    birthdate="1985-03-14",
    birthplace="Lyon",
    street="12 rue de la République",
    postal_code="69002",
    city="Lyon",
    country="France",
    phone="06 11 22 33 44",
    email="alice.martin@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00001", "00012345678"),
    bic="SBOXFRPP",
    tax=TaxNotice("2025", 34120, "1", "2669A00000001"),
    delivery_point="09112233445566",
)

ROBERT = Person(
    family_name="Dubois",
    given_name="Robert",
    civility="M.",
    birthdate="1978-11-02",
    birthplace="Marseille",
    street="45 boulevard Longchamp",
    postal_code="13001",
    city="Marseille",
    country="France",
    phone="06 22 33 44 55",
    email="robert.dubois@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00130", "00098765432"),
    bic="SBOXFRPPMRS",
    tax=TaxNotice("2025", 52300, "2", "2613A00000002"),
)

CAROLINE = Person(
    family_name="Petit",
    given_name="Caroline",
    civility="Mme",
    birthdate="1990-07-21",
    birthplace="Nantes",
    street="5 place Royale",
    postal_code="44000",
    city="Nantes",
    country="France",
    phone="06 12 34 56 78",
    email="caroline.petit@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00440", "00011112222"),
    bic="SBOXFRPPNTE",
    tax=TaxNotice("2025", 28750, "1", "2644A00000003"),
)

DAVID = Person(
    family_name="Leroy",
    given_name="David",
    civility="M.",
    birthdate="1969-01-30",
    birthplace="Lille",
    street="27 rue Nationale",
    postal_code="59000",
    city="Lille",
    country="France",
    phone="07 81 23 45 67",
    email="david.leroy@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00590", "00033334444"),
    bic="SBOXFRPPLIL",
    tax=TaxNotice("2025", 61200, "3", "2659A00000004"),
)

EMILIE = Person(
    family_name="Girard",
    given_name="Émilie",
    civility="Mme",
    birthdate="1993-04-08",
    birthplace="Bordeaux",
    street="3 allée des Tilleuls",
    postal_code="33000",
    city="Bordeaux",
    country="France",
    phone="06 33 44 55 66",
    email="emilie.girard@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00330", "00055556666"),
    bic="SBOXFRPPBDX",
    tax=TaxNotice("2025", 24980, "1", "2633A00000005"),
    delivery_point="30001234567890",
)

FRANCOIS = Person(
    family_name="Bonnet",
    given_name="François",
    civility="M.",
    birthdate="1961-10-19",
    birthplace="Bastia",
    street="14 chemin du Moulin",
    postal_code="20090",
    city="Ajaccio",
    country="France",
    phone="06 44 55 66 77",
    email="francois.bonnet@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00200", "00077778888"),
    bic="SBOXFRPPAJA",
    tax=TaxNotice("2025", 19870, "1,5", "2620A00000006"),
    delivery_point="20009876543210",
)

HELENE = Person(
    family_name="Moreau",
    given_name="Hélène",
    civility="Mme",
    birthdate="1958-09-09",
    birthplace="Toulouse",
    street="9 rue du Taur",
    postal_code="31000",
    city="Toulouse",
    country="France",
    phone="06 55 66 77 88",
    email="helene.moreau@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00310", "00099990000"),
    bic="SBOXFRPPTLS",
    tax=TaxNotice("2025", 38512, "2,5", "2631A01234567"),
)

JULIEN = Person(
    family_name="Fournier",
    given_name="Julien",
    civility="M.",
    birthdate="1995-12-01",
    birthplace="Strasbourg",
    street="2 quai des Bateliers",
    postal_code="67000",
    city="Strasbourg",
    country="France",
    phone="06 66 77 88 99",
    email="julien.fournier@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00670", "00012121212"),
    bic="SBOXFRPPSXB",
    tax=TaxNotice("2025", 21480, "1", "2667B07654321"),
)

SOPHIE = Person(
    family_name="Lenoir",
    given_name="Sophie",
    civility="Mme",
    birthdate="1982-05-17",
    birthplace="Saint-Denis (La Réunion)",
    street="8 rue de Paris",
    postal_code="97400",
    city="Saint-Denis",
    country="France",
    phone="06 45 67 89 01",
    email="sophie.lenoir@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00974", "00055555555"),
    bic="SBOXFRPPXXX",
    tax=TaxNotice("2025", 27940, "1,5", "2674C01112131"),
    delivery_point="97400111222333",
)


# -- people for the verify-don't-reveal checks (docs/checks.md) --------------------------------

# A name with accents and a particle; born on 29 February. The tax office prints her family
# name in capitals ("DE LA FONTAINE"), the bank as written.
ELEONORE = Person(
    family_name="de La Fontaine",
    given_name="Éléonore",
    civility="Mme",
    birthdate="1988-02-29",
    birthplace="Reims",
    street="21 rue Saint-Jean",
    postal_code="69005",
    city="Lyon",
    country="France",
    phone="06 21 43 65 87",
    email="eleonore.delafontaine@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00510", "00088889999"),
    bic="SBOXFRPPREI",
    tax=TaxNotice("2025", 29850, "1", "2651A00000007"),
)

# A married name the way French banks print it: birth name, "épouse", usage name.
CLAIRE = Person(
    family_name="Durand épouse Leroy",
    given_name="Claire",
    civility="Mme",
    birthdate="1976-06-12",
    birthplace="Rennes",
    street="6 rue de la Monnaie",
    postal_code="35000",
    city="Rennes",
    country="France",
    phone="06 77 88 99 00",
    email="claire.leroy@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00350", "00024682468"),
    bic="SBOXFRPPREN",
    tax=TaxNotice("2025", 41230, "2", "2635A00000008"),
)


def birthdate_aged_17(today: date) -> str:
    """A birthdate that makes someone 17 on `today` and for about six months more: her 17th
    birthday was 182 days before `today` (a 29 February that year has no match, the 28th is
    taken), so her 18th is about 183 days after."""
    birthday = today - timedelta(days=182)
    year, day = birthday.year - 17, birthday.day
    if (birthday.month, day) == (2, 29) and not calendar.isleap(year):
        day = 28
    return date(year, birthday.month, day).isoformat()


# Seventeen, whenever the sandbox starts: her birthdate is computed from the day this module is
# imported (the sandbox plays a third party, with the machine's date; she turns 18 only if one
# sandbox process runs for six months). Minors may hold a bank account in France.
LEA = Person(
    family_name="Roux",
    given_name="Léa",
    civility="Mme",
    birthdate=birthdate_aged_17(date.today()),
    birthplace="Dijon",
    street="9 rue des Forges",
    postal_code="21000",
    city="Dijon",
    country="France",
    phone="06 98 76 54 32",
    email="lea.roux@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00210", "00013571357"),
    bic="SBOXFRPPDIJ",
    tax=TaxNotice("2025", 0, "1", "2621A00000009"),  # no notice of her own: not at the tax office
)

# A street a partner types abbreviated ("128 bis bd St-Germain").
THOMAS = Person(
    family_name="Lefèvre",
    given_name="Thomas",
    civility="M.",
    birthdate="1984-10-05",
    birthplace="Paris",
    street="128 bis boulevard Saint-Germain",
    postal_code="75006",
    city="Paris",
    country="France",
    phone="06 13 57 91 35",
    email="thomas.lefevre@example.fr",
    iban=french_iban(SANDBOX_BANK_CODE, "00750", "00036925814"),
    bic="SBOXFRPPPAR",
    tax=TaxNotice("2025", 45870, "1", "2675A00000010"),
    delivery_point="75006128128128",
)


def _wrong_check_digits(iban: str) -> str:
    """The same account with check digits off by one: the shape is fine, MOD 97 is not."""
    check = (int(iban[2:4]) + 1 - 2) % 97 + 2
    return f"{iban[:2]}{check:02d}{iban[4:]}"


BROKEN = Person(
    family_name="Cassé",
    given_name="Bruno",
    civility="M.",
    birthdate="1990-02-31",  # no such day
    birthplace="Nulle-Part",
    street="1 impasse de l'Erreur",
    postal_code="96000",  # no department 96
    city="Nulle-Part",
    country="France",
    phone="06 12 34",  # too short
    email="bruno.casse@@example",
    iban=_wrong_check_digits(french_iban(SANDBOX_BANK_CODE, "00000", "00000000001")),
    bic="SBOX-FR",  # not ISO 9362
    tax=TaxNotice("2099", -1200, "1,3", "XX"),  # every field wrong
    delivery_point="1",
)
