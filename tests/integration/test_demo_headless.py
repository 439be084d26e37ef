"""`sharelock demo --headless`: one whole share as a partner's back end and a browser make it,
against a real broker (the function the command runs)."""

from __future__ import annotations

from sharelock.demo.headless import run_share
from tests.support.broker import Stack


def test_headless_share_goes_through_every_step(stack: Stack) -> None:
    partner = stack.partner
    result = run_share(stack.url, partner.client_id, partner.client_secret, partner.redirect_uri)
    assert result.received["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert result.received["data_source"] == "sandbox-bank"
    assert {"collected", "approved"} <= set(result.steps_ms)
