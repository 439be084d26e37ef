"""Verify-don't-reveal checks in a share (docs/checks.md).

A partner's checks (`AuthorizationRequest.checks`) are answered the moment the data source has
been read, from what it gave. The values that only a check needed (the birthdate behind
"over 18?", the IBAN behind "is this her account?") are dropped right there, before anything
is stored: they are never in Redis, never shown for review, never delivered, never kept 72 h.
What is kept until delivery, sealed like the rest, is each check's answer; a `CLOSE_MATCH`
name also keeps the name the source holds, which leaves only if the person agrees.

The person sees each question and the answer that would be sent, may decline any of them
(the partner then receives the check marked `declined`, with no result), and decides on the
close-match name.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from sharelock.checks import (
    ActualName,
    Category,
    CheckRequest,
    CheckResult,
    Description,
    describe_answer,
    describe_question,
    evaluate,
    parse_authorization_details,
)
from sharelock.flow.record_types import Data
from sharelock.oauth import AuthorizationRequest

Answers = list[dict[str, Any]]  # each check's claims (`CheckResult.to_claims`), in order


def _requests(request: AuthorizationRequest) -> tuple[CheckRequest, ...]:
    if not request.checks:
        return ()
    # Canonical entries, validated at PAR: parsing them again cannot fail on their content.
    return parse_authorization_details(list(request.checks))


def answer_checks(request: AuthorizationRequest, data: Data, today: date) -> tuple[Data, Answers]:
    """The answers to the request's checks, and the collected data with only the scopes the
    partner asked for (what checks alone needed is left out)."""
    checks = _requests(request)
    answers = [evaluate(check, data, today).to_claims(reveal_actual_name=True) for check in checks]
    kept = {scope: dict(values) for scope, values in data.items() if scope in request.scopes}
    return kept, answers


def _description(description: Description) -> dict[str, Any]:
    return {"key": description.key, "params": dict(description.params)}


def questions(request: AuthorizationRequest) -> list[dict[str, Any]]:
    """What the partner asks, for the consent screen (the route renders the descriptions in
    the person's language)."""
    return [
        {
            "index": index,
            "id": check.id,
            "check": check.check.value,
            "question": _description(describe_question(check)),
        }
        for index, check in enumerate(_requests(request))
    ]


def _result(check: CheckRequest, claims: dict[str, Any]) -> CheckResult:
    raw = claims.get("result")
    answer = raw if isinstance(raw, bool) else Category(str(raw))
    name = claims.get("actual_name")
    actual = None if not isinstance(name, dict) else ActualName(**name)
    return CheckResult(check, answer, actual)


def reviewed(
    request: AuthorizationRequest, answers: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each question with the answer that would be sent, for the review step."""
    listed = questions(request)
    for item, check, claims in zip(listed, _requests(request), answers, strict=True):
        result = _result(check, claims)
        item["answer"] = _description(describe_answer(result))
        item["result"] = claims.get("result")
        item["close_match_name"] = result.actual_name is not None
    return listed


def released(
    answers: Sequence[dict[str, Any]], declined: Collection[int], reveal_actual_name: bool
) -> Answers:
    """The answers as the partner will receive them: a declined check without its result, and
    a close-match name only if the person agreed to send it."""
    sent: Answers = []
    for index, claims in enumerate(answers):
        item = dict(claims)
        name = item.pop("actual_name", None)
        if index in declined:
            del item["result"]
            item["declined"] = True
        elif reveal_actual_name and name is not None:
            item["actual_name"] = name
        sent.append(item)
    return sent
