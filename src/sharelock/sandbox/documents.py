"""The PDF documents the sandbox portals issue, made per person when asked (fpdf2).

Each portal's "Documents" page links to its files: the energy supplier's latest bill (the usual
French proof of address), the tax office's notice, the bank's account details ("RIB") and its
latest statement. They say what a real one says, for the fictitious person logged in, and are
the same bytes every time (fixed dates, no random part), so a test can compare digests.

Only fpdf2's core fonts are used (no font file to ship): they cover Latin-1, which every
sandbox name is written in; anything else is replaced by `?`, and amounts say "EUR".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from fpdf import FPDF

from sharelock.sandbox.people import Person

ISSUED = datetime(2025, 10, 6, 9, 0, tzinfo=UTC)
"""When every sandbox document was issued (fixed, so files are reproducible)."""

_FOOTER = "Document fictif - Sharelock sandbox. Ces données n'appartiennent à personne."


def _latin(text: str) -> str:
    """What the core fonts can print: Latin-1, the rest replaced."""
    text = text.replace("\u202f", " ").replace("\u00a0", " ").replace("€", "EUR")
    return text.encode("latin-1", "replace").decode("latin-1")


def _amount(cents: int) -> str:
    """1234567 → "12 345,67 EUR", as French documents print amounts."""
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    return f"{sign}{euros:,}".replace(",", " ") + f",{rest:02d} EUR"


def _grouped(value: str) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


class _Document(FPDF):
    """An A4 page in the portal's colours: its name at the top, the notice at the bottom."""

    def __init__(self, issuer: str, title: str) -> None:
        super().__init__(format="A4")
        self.issuer, self.heading = issuer, title
        self.set_creation_date(ISSUED)
        self.set_title(_latin(title))
        self.set_author(_latin(issuer))
        self.set_producer("Sharelock sandbox")
        self.set_lang("fr")
        self.set_auto_page_break(auto=True, margin=20)

    def header(self) -> None:
        self.set_font("helvetica", "B", 16)
        self.cell(0, 9, _latin(self.issuer), new_x="LMARGIN", new_y="NEXT")
        self.set_font("helvetica", "", 12)
        self.cell(0, 7, _latin(self.heading), new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("helvetica", "I", 8)
        self.cell(0, 5, _latin(f"{_FOOTER}  Page {self.page_no()}/{{nb}}"), align="C")

    def lines(self, rows: Sequence[tuple[str, str]]) -> None:
        """Label and value, one row each."""
        for label, value in rows:
            self.set_font("helvetica", "", 10)
            self.cell(60, 6, _latin(label))
            self.set_font("helvetica", "B", 10)
            self.cell(0, 6, _latin(value), new_x="LMARGIN", new_y="NEXT")
        self.ln(3)

    def addressee(self, person: Person, name: str | None = None) -> None:
        self.set_font("helvetica", "", 11)
        town = f"{person.postal_code} {person.city}"
        for line in (name or person.full_name, person.street, town):
            self.cell(0, 6, _latin(line), new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def bytes(self) -> bytes:
        return bytes(self.output())


@lru_cache(maxsize=64)
def energy_bill(person: Person) -> bytes:
    """The supplier's latest bill: who is supplied, where, for how much (a proof of address)."""
    pdf = _Document("Énergie Sandbox", "Facture d'électricité")
    pdf.add_page()
    pdf.addressee(person)
    consumption = 180 + sum(map(ord, person.family_name)) % 240  # kWh, one per person
    pdf.lines(
        [
            ("Facture du", ISSUED.strftime("%d/%m/%Y")),
            ("Période", "01/09/2025 - 30/09/2025"),
            ("Titulaire du contrat", person.full_name),
            ("Adresse de fourniture", f"{person.street}, {person.postal_code} {person.city}"),
            ("Point de livraison (PDL)", person.delivery_point),
            ("Consommation", f"{consumption} kWh"),
            ("Montant TTC", _amount(consumption * 27)),
        ]
    )
    return pdf.bytes()


@lru_cache(maxsize=64)
def tax_notice(person: Person) -> bytes:
    """The tax office's notice on last year's income."""
    notice = person.tax
    pdf = _Document("Impôts Sandbox", f"Avis d'impôt {int(notice.tax_year) + 1}")
    pdf.add_page()
    pdf.addressee(person, f"{person.civility} {person.family_name.upper()} {person.given_name}")
    pdf.lines(
        [
            ("Impôt sur les revenus de", notice.tax_year),
            ("Revenu fiscal de référence", _amount(notice.reference_income * 100)),
            ("Nombre de parts", notice.household_shares),
            ("Référence de l'avis", notice.notice_reference),
            ("Date d'établissement", ISSUED.strftime("%d/%m/%Y")),
        ]
    )
    return pdf.bytes()


@lru_cache(maxsize=64)
def bank_details(person: Person) -> bytes:
    """The account details (RIB): bank, branch, account, key, IBAN and BIC."""
    iban = person.iban
    pdf = _Document("Banque Sandbox", "Relevé d'identité bancaire (RIB)")
    pdf.add_page()
    pdf.addressee(person, person.full_name.upper())
    pdf.lines(
        [
            ("Titulaire", person.full_name.upper()),
            ("Code banque", iban[4:9]),
            ("Code guichet", iban[9:14]),
            ("Numéro de compte", iban[14:25]),
            ("Clé RIB", iban[25:27]),
            ("IBAN", _grouped(iban)),
            ("BIC", person.bic),
            ("Domiciliation", f"Banque Sandbox, agence de {person.city}"),
        ]
    )
    return pdf.bytes()


@lru_cache(maxsize=64)
def bank_statement(person: Person) -> bytes:
    """The latest monthly statement: two pages, the operations then the bank's notices."""
    pdf = _Document("Banque Sandbox", "Relevé de compte - septembre 2025")
    pdf.add_page()
    pdf.addressee(person, person.full_name.upper())
    pdf.lines([("Compte courant", _grouped(person.iban)), ("BIC", person.bic)])
    seed = sum(map(ord, person.full_name))
    balance = 150_000 + seed * 37
    pdf.lines([("Solde au 31/08/2025", _amount(balance))])
    for day in range(1, 29, 3):
        amount = -((seed * day) % 9_000 + 500) if day % 2 else ((seed * day) % 4_000 + 100)
        balance += amount
        label = "Carte - supermarché" if amount < 0 else "Virement reçu"
        pdf.lines([(f"{day:02d}/09/2025  {label}", _amount(amount))])
    pdf.lines([("Solde au 30/09/2025", _amount(balance))])
    pdf.add_page()
    pdf.set_font("helvetica", "", 10)
    pdf.multi_cell(
        0,
        6,
        _latin(
            "Informations: vos relevés sont disponibles 24 mois dans votre espace client. "
            "En cas de contestation d'une opération, adressez-vous à votre agence."
        ),
    )
    return pdf.bytes()
