"""Read a portal's page the way a scraper does, with the standard library's HTML parser.

A page is reduced to the few things a connector relies on: what the page says it is
(`<body data-page>`), the error it shows (`data-error`), its forms (action, inputs), the
values marked `data-field` (a `datetime` attribute wins over the text, as for `<time>`), the
links to documents marked `data-document` (their `href`) and a device token the source hands
over after a login that asked it to remember the device (`data-device-token`).
Anything else on the page is ignored, so cosmetic changes on the portal do not break collection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip


@dataclass(slots=True)
class Form:
    action: str
    method: str
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (type, value)

    def has_input(self, name: str) -> bool:
        return name in self.inputs

    def has_type(self, kind: str) -> bool:
        return any(kind == input_type for input_type, _ in self.inputs.values())

    @property
    def hidden(self) -> dict[str, str]:
        """The hidden inputs (CSRF token and the like), to send back as they are."""
        return {name: value for name, (kind, value) in self.inputs.items() if kind == "hidden"}


@dataclass(slots=True)
class Page:
    """What a connector reads from one HTML page."""

    marker: str | None = None
    error: str | None = None
    forms: list[Form] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)
    documents: dict[str, list[str]] = field(default_factory=dict)  # data-document -> hrefs
    device_token: str | None = field(default=None, repr=False)  # a credential: never shown

    def form_with(self, input_type: str) -> Form | None:
        """The first form that has an input of this type (the login form has a password)."""
        return next((form for form in self.forms if form.has_type(input_type)), None)

    def form_having(self, name: str) -> Form | None:
        return next((form for form in self.forms if form.has_input(name)), None)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._form: Form | None = None
        self._capture: tuple[str, list[str]] | None = None  # field name, text parts
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "body" and self.page.marker is None:
            self.page.marker = values.get("data-page")
        if "data-error" in values and self.page.error is None:
            self.page.error = values["data-error"]
        if "data-device-token" in values and self.page.device_token is None:
            self.page.device_token = values["data-device-token"]
        if tag == "a" and values.get("data-document"):
            self.page.documents.setdefault(values["data-document"], []).append(
                values.get("href", "")
            )
        if tag == "form":
            self._form = Form(values.get("action", ""), values.get("method", "get").lower())
            self.page.forms.append(self._form)
        elif tag == "input" and self._form is not None and values.get("name"):
            kind = values.get("type", "text").lower()
            self._form.inputs[values["name"]] = (kind, values.get("value", ""))
        if self._capture is not None:
            if tag not in _VOID:
                self._depth += 1
        elif "data-field" in values:
            name = values["data-field"]
            if "datetime" in values:
                self.page.fields.setdefault(name, []).append(values["datetime"])
                if tag not in _VOID:
                    self._capture, self._depth = ("", []), 1  # skip the human-readable text
            elif tag not in _VOID:
                self._capture, self._depth = (name, []), 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if self._capture is None or tag in _VOID:
            return
        self._depth -= 1
        if self._depth == 0:
            name, parts = self._capture
            if name:
                self.page.fields.setdefault(name, []).append(" ".join("".join(parts).split()))
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._capture is not None:
            self._capture[1].append(data)


def read_page(html: str) -> Page:
    """Parse a page. Never raises on bad HTML: a page that is not what was expected simply has
    no marker or no fields, and the connector decides what that means."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page
