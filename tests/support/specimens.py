"""Specimen identity documents, rendered by the tests: a card or a passport page with a real
face photograph pasted in and a machine-readable zone in OCR-B (Debian's `fonts-ocr-b`, the
zones' own typeface). The zones of passports (TD3) and of the 2021 French card (TD1) come from
the `mrz` package's generator, an implementation independent of Sharelock's parser; the 1988
French card's from its published layout, with `mrz`'s check-digit function.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from mrz.base.functions import hash_string
from mrz.generator.td1 import TD1CodeGenerator
from mrz.generator.td3 import TD3CodeGenerator
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

OCRB = Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf")
SANS = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class Holder:
    family_name: str
    given_names: str
    birthdate: date
    sex: str = "F"


def _yymmdd(day: date) -> str:
    return day.strftime("%y%m%d")


def passport_zone(holder: Holder, number: str, expiry: date, country: str = "FRA") -> list[str]:
    code = TD3CodeGenerator(
        "P", country, holder.family_name, holder.given_names, number, country,
        _yymmdd(holder.birthdate), holder.sex, _yymmdd(expiry), "",
    )  # fmt: skip
    return str(code).splitlines()


def card_2021_zone(holder: Holder, number: str, expiry: date) -> list[str]:
    code = TD1CodeGenerator(
        "ID", "FRA", number, _yymmdd(holder.birthdate), holder.sex, _yymmdd(expiry), "FRA",
        holder.family_name, holder.given_names,
    )  # fmt: skip
    return str(code).splitlines()


def card_1988_zone(holder: Holder, issued: date, office: str = "923021") -> list[str]:
    """IDFRA + surname + office / YYMM + department + sequence, check, given names, birth."""
    first = ("IDFRA" + holder.family_name.upper().replace(" ", "<")).ljust(30, "<") + office
    number = issued.strftime("%y%m") + office[:3] + "10285"
    given = holder.given_names.upper().replace(" ", "<<").ljust(14, "<")[:14]
    birth = _yymmdd(holder.birthdate)
    second = number + hash_string(number) + given + birth + hash_string(birth) + holder.sex
    return [first, second + hash_string(first + second)]


def with_wrong_digit(zone: list[str], line: int, position: int) -> list[str]:
    """`zone` with the check digit at (`line`, `position`) changed."""
    changed = list(zone)
    digit = changed[line][position]
    wrong = str((int(digit) + 3) % 10) if digit.isdigit() else "7"
    changed[line] = changed[line][:position] + wrong + changed[line][position + 1 :]
    return changed


def render(zone: list[str], portrait: NDArray[np.uint8], title: str) -> Image.Image:
    """A document at about 8 pixels a millimetre: a passport page (125 x 88 mm) for two lines
    of 44, an ID-1 card (85.6 x 54 mm) otherwise."""
    size = (1000, 704) if len(zone[0]) == 44 else (856, 540)
    page = Image.new("RGB", size, (222, 230, 238))
    draw = ImageDraw.Draw(page)
    sans = ImageFont.truetype(str(SANS), 22)
    draw.rectangle((0, 0, size[0], 52), fill=(40, 60, 120))
    draw.text((24, 12), f"SPECIMEN — {title}", font=sans, fill=(255, 255, 255))
    photo_height = int(size[1] * 0.5)
    photo = Image.fromarray(portrait).resize((int(photo_height * 0.78), photo_height))
    page.paste(photo, (30, 70))
    small = ImageFont.truetype(str(SANS), 18)
    for row, label in enumerate(("Nom / Surname", "Prénoms / Given names", "Né(e) le / Born")):
        draw.text((60 + photo.width, 80 + row * 56), label, font=small, fill=(90, 90, 110))
    font_size = 10
    while ImageFont.truetype(str(OCRB), font_size + 1).getlength("<" * len(zone[0])) < (
        size[0] * 0.92
    ):
        font_size += 1
    ocrb = ImageFont.truetype(str(OCRB), font_size)
    top = size[1] - len(zone) * font_size * 1.3 - 24
    for number, line in enumerate(zone):
        draw.text(
            (size[0] * 0.04, top + number * font_size * 1.3), line, font=ocrb, fill=(25, 25, 25)
        )
    return page


def photographed(page: Image.Image, angle: float = 0.0, scale: float = 1.0) -> Image.Image:
    """The document as a phone sees it: turned a little, on a darker table, rescaled."""
    turned = page.rotate(
        angle, expand=True, fillcolor=(70, 64, 60), resample=Image.Resampling.BICUBIC
    )
    if scale != 1.0:
        turned = turned.resize((int(turned.width * scale), int(turned.height * scale)))
    return turned


def jpeg(image: Image.Image | NDArray[np.uint8], quality: int = 90) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(image: Image.Image | NDArray[np.uint8]) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()
