"""Verify-don't-reveal checks (docs/checks.md): a partner asks a question about the person in
RFC 9396 `authorization_details` ("is this her name?", "is she over 18?") and gets an answer in
place of the data. Pure logic, no I/O:

- `parse_authorization_details` turns the parameter into typed, frozen requests, or raises
  `InvalidCheckRequest` (message safe to show, never a value the partner sent);
  `request_entry` gives a request back as its canonical JSON entry (to store and re-parse);
- `evaluate` answers one request from what a connector collected: a Verification-of-Payee
  `Category` or a boolean, and for a `CLOSE_MATCH` name the real name, sent only if the person
  agrees (`CheckResult.to_claims(reveal_actual_name=...)`);
- `describe_question` / `describe_answer` give the consent screen's wording as message keys and
  parameters (`MESSAGES` holds the English and French texts, `render` formats them).
"""

from sharelock.checks.compare import Category, compare_addresses, compare_names
from sharelock.checks.requests import (
    CHECK_TYPE,
    MAX_CHECKS,
    MAX_TEXT,
    AddressMatch,
    AgeOver,
    CheckName,
    CheckRequest,
    IbanHolderMatch,
    IncomeBelow,
    InvalidCheckRequest,
    NameMatch,
    parse_authorization_details,
    request_entry,
    required_scopes,
)
from sharelock.checks.results import ActualName, Answer, CheckResult, age_on, evaluate
from sharelock.checks.texts import (
    MESSAGES,
    Description,
    describe_answer,
    describe_question,
    render,
)

__all__ = [
    "CHECK_TYPE",
    "MAX_CHECKS",
    "MAX_TEXT",
    "MESSAGES",
    "ActualName",
    "AddressMatch",
    "AgeOver",
    "Answer",
    "Category",
    "CheckName",
    "CheckRequest",
    "CheckResult",
    "Description",
    "IbanHolderMatch",
    "IncomeBelow",
    "InvalidCheckRequest",
    "NameMatch",
    "age_on",
    "compare_addresses",
    "compare_names",
    "describe_answer",
    "describe_question",
    "evaluate",
    "parse_authorization_details",
    "render",
    "request_entry",
    "required_scopes",
]
