"""Session fixation (abuse issue, class 1): the broker never adopts a session value it did not
issue for that very flow, and several flows still run side by side in one browser.

The attack: an origin that is same-site with the broker (another port, a sibling subdomain)
plants a cookie value it knows in the victim's browser, lets the victim run a flow, then reads
the victim's collected data with that value. Real HTTP, Redis, SQLite, SoftHSM, sandbox."""

from __future__ import annotations

import httpx

from tests.support.broker import Share, Stack

PLANTED = "planted-by-a-sibling-origin-" + "A" * 20


def _flow_secret(share: Share) -> str:
    value = share.browser.cookies.get(f"sl_flow_{share.flow_id}")
    assert value, "the flow's own cookie was not set"
    return str(value)


def test_a_planted_cookie_binds_nothing(stack: Stack) -> None:
    victim = Share(stack)
    # Every name the attacker could plant beforehand: the old single-cookie names, and the
    # per-flow prefix with guesses (the flow id is random, so it cannot be known in advance).
    for name in ("sl_session", "__Host-sl_session", "sl_flow_", "sl_flow_" + "A" * 32):
        victim.browser.cookies.set(name, PLANTED)
    assert victim.start().status_code == 303
    assert _flow_secret(victim) != PLANTED
    victim.collect_started()
    assert victim.review().status_code == 200

    with httpx.Client(base_url=stack.url, timeout=30) as attacker:
        for name in ("sl_session", f"sl_flow_{victim.flow_id}"):
            attacker.cookies.clear()
            attacker.cookies.set(name, PLANTED)
            for path in ("", "/data"):
                response = attacker.get(f"/api/flows/{victim.flow_id}{path}")
                assert response.status_code == 403, (name, path, response.text)
                assert response.json()["error"] == "forbidden"
                assert "iban" not in response.text.lower()
            page = attacker.get(f"/consent/{victim.flow_id}")
            assert page.status_code == 403


def test_the_secret_is_new_for_every_flow_even_from_one_browser(stack: Stack) -> None:
    first = Share(stack)
    assert first.start().status_code == 303
    second = Share(stack)
    second.browser = first.browser  # the same browser, a second tab
    assert second.start().status_code == 303
    assert first.flow_id != second.flow_id
    assert _flow_secret(first) != _flow_secret(second)


def test_parallel_tabs_of_one_browser_each_complete_their_share(stack: Stack) -> None:
    tabs = [Share(stack), Share(stack, scope="identity")]
    tabs[1].browser = tabs[0].browser
    for tab in tabs:
        assert tab.start().status_code == 303
    # Interleaved, as two tabs would be: the second flow's cookie does not replace the first's.
    for tab in tabs:
        tab.collect_started()
    results = []
    for tab in tabs:
        token = tab.exchange(tab.approve_and_get_code())
        assert token.status_code == 200, token.text
        shared = tab.fetch(token.json()["access_token"])
        assert shared.status_code == 200, shared.text
        results.append(shared.json())
    assert set(results[0]["data"]) == {"identity", "address", "bank_account"}
    assert set(results[1]["data"]) == {"identity"}
