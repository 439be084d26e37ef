"""Identity verification on the consent screen, in Debian's headless Chromium with a fake camera
(`--use-fake-device-for-media-stream`, `--use-file-for-fake-video-capture`) playing a video the
test makes from real photographs (face_recognition's test images): the biometric consent on its
own screen, the passport chosen as a file, the live capture through `getUserMedia`, the images
encrypted in the page (Web Crypto), the real engine, the review showing the outcome (never an
image), and the partner receiving the evidence. Fixtures are those of `test_consent_browser.py`.

The fake camera plays its video on a loop from when the page opens it, so which pose each frame
of the turning video shows depends on timing: that test asserts what every frame gives (the
same person as the passport's photo), not the head-turn challenge, which tests/identity/ covers
frame by frame. A replayed still photograph fails the challenge whatever the timing (every
frame is the same picture): the second test asserts that, through the page and the partner."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from sharelock.identity import DlibFaceEngine
from sharelock.sandbox.people import ALICE
from tests.identity.conftest import _load, mirrored, portrait
from tests.integration.test_consent_browser import (  # noqa: F401 (fixtures)
    Person,
    Site,
    axe_report,
    screens,
    site,
    stub_partner,
)
from tests.support import face_photos
from tests.support.broker import Share, flow_keys
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, Screens, Watch, ensure_axe
from tests.support.server import LiveServer
from tests.support.specimens import Holder, jpeg, passport_zone, photographed, render

pytestmark = pytest.mark.browser

DETAILS = json.dumps([{"type": "sharelock_identity_verification", "document_types": ["passport"]}])
HOLDER = Holder("MARTIN", "ALICE", date.fromisoformat(ALICE.birthdate))
WIDTH, HEIGHT, FPS = 640, 480, 10
COMPACT_JWE = re.compile(r"[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+")
VERIFY_TIMEOUT_MS = 90_000  # the capture (about 5 s), the models' first load, the verification


def _fitted(image: np.ndarray) -> Image.Image:
    """A photograph letterboxed into the camera's frame."""
    picture = Image.fromarray(image)
    picture.thumbnail((WIDTH, HEIGHT))
    frame = Image.new("RGB", (WIDTH, HEIGHT), (40, 40, 40))
    frame.paste(picture, ((WIDTH - picture.width) // 2, (HEIGHT - picture.height) // 2))
    return frame


def write_y4m(path: Path, frames: list[Image.Image], repeat: int) -> None:
    """A raw YUV 4:2:0 video (the format Chromium's fake camera reads), each frame `repeat`
    times."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            y, u, v = frame.convert("YCbCr").split()
            half = (WIDTH // 2, HEIGHT // 2)
            planes = y.tobytes() + u.resize(half).tobytes() + v.resize(half).tobytes()
            for _ in range(repeat):
                out.write(b"FRAME\n" + planes)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("identity-camera")
    photos = {
        name: _load(face_photos.ensure() / f"{name}.jpg") for name in ("obama", "obama2", "obama3")
    }
    (face,) = DlibFaceEngine().faces(photos["obama3"])
    page = render(passport_zone(HOLDER, "12AB34567", date(2032, 1, 1)),
                  portrait(photos["obama3"], face.box), "PASSPORT")  # fmt: skip
    passport = directory / "passport.jpg"
    passport.write_bytes(jpeg(photographed(page, angle=2.0), 85))
    video = directory / "turning.y4m"
    poses = [photos["obama"], photos["obama2"], mirrored(photos["obama2"])]
    write_y4m(video, [_fitted(pose) for pose in poses], repeat=FPS // 2)
    return {"passport": passport, "video": video}


@pytest.fixture(scope="module")
def still_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A printed photograph held up to the camera: the passport holder, never moving."""
    video = tmp_path_factory.mktemp("identity-still") / "still.y4m"
    write_y4m(video, [_fitted(_load(face_photos.ensure() / "obama.jpg"))], repeat=FPS)
    return video


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """One Playwright for the module: its sync API cannot be started twice at once."""
    ensure_axe()
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: install Debian's 'chromium' package"
    with sync_playwright() as started:
        yield started


@contextmanager
def _fake_camera(playwright: Playwright, video: Path) -> Iterator[Browser]:
    """A Chromium whose camera plays `video` (each browser has its one file)."""
    fake_camera = [
        "--use-fake-ui-for-media-stream",  # grants the camera without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_camera, headless=True
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture(scope="module")
def camera_browser(playwright: Playwright, material: dict[str, Path]) -> Iterator[Browser]:
    with _fake_camera(playwright, material["video"]) as launched:
        yield launched


def _person_maker(
    browser: Browser, shots: Screens, axe: dict[str, list[str]]
) -> Callable[[Site], Person]:
    def make(on: Site) -> Person:
        context = browser.new_context(locale="en-GB", viewport=DESKTOP)
        context.grant_permissions(["camera"], origin=on.broker)
        watch = Watch()
        watch.attach(context)
        return Person(on, context.new_page(), watch, shots, axe)

    return make


@pytest.fixture
def camera_person(
    camera_browser: Browser,
    screens: Screens,  # noqa: F811
    axe_report: dict[str, list[str]],  # noqa: F811
) -> Callable[[Site], Person]:
    return _person_maker(camera_browser, screens, axe_report)


@dataclass
class KycShare:
    share: Share
    request_uri: str
    callback: str


def _kyc_share(site: Site, stub_partner: LiveServer, name: str, path: str) -> KycShare:  # noqa: F811
    """A partner asking only identity verification, and its pushed request."""
    callback = f"{stub_partner.url}/{path}"
    registered = site.stack.add_partner(
        name, redirect_uri=callback, scopes=["identity"], purpose="Know your customer"
    )
    share = Share(site.stack, partner=registered, scope="")
    pushed = share.push(scope=None, authorization_details=DETAILS)
    assert pushed.status_code == 201, pushed.text
    return KycShare(share, pushed.json()["request_uri"], callback)


def _verify_in_page(
    person: Person, kyc: KycShare, passport: Path, *, screenshots: bool = False
) -> None:
    """From /authorize to the review: the bank's sign-in, the biometric consent, the passport
    as a file, the live capture, the verification."""
    page = person.page
    query = urlencode({"client_id": kyc.share.client_id, "request_uri": kyc.request_uri})
    page.goto(f"{kyc.share.stack.url}/authorize?{query}")
    expect(page.locator("#step-request")).to_be_visible()
    person.pick("sandbox-bank")
    person.sign_in("alice", "alice-pass")
    person.wait_for("identity-consent")
    expect(page.locator("#step-identity-consent")).to_contain_text("biometric")
    if screenshots:
        person.check("identity consent", "30-identity-consent")
    page.click("#identity-agree")
    person.wait_for("identity-capture")
    if screenshots:
        person.check("identity capture", "31-identity-capture")
    page.set_input_files("#identity-document", str(passport))
    page.click("#identity-start")
    expect(page.locator("#step-review")).to_be_visible(timeout=VERIFY_TIMEOUT_MS)


def _partner_receives(person: Person, kyc: KycShare) -> dict[str, Any]:
    """Approve, go on to the partner, and fetch what it receives."""
    page = person.page
    page.click("#approve")
    person.shared()
    page.click("#done-link")
    page.wait_for_url(re.compile(re.escape(kyc.callback) + r"\?"))
    token = kyc.share.exchange(parse_qs(urlsplit(page.url).query)["code"][0])
    assert token.status_code == 200, token.text
    body: dict[str, Any] = kyc.share.fetch(token.json()["access_token"]).json()
    return body


def test_identity_is_verified_in_the_page_with_a_camera(
    site: Site,  # noqa: F811
    stub_partner: LiveServer,  # noqa: F811
    camera_person: Callable[[Site], Person],
    material: dict[str, Path],
) -> None:
    stack = site.stack
    kyc = _kyc_share(site, stub_partner, "Bank KYC", "kyc")
    person = camera_person(site)
    page = person.page
    _verify_in_page(person, kyc, material["passport"], screenshots=True)

    expect(page.locator("#review-intro")).to_have_text(
        "Here is the outcome of the identity verification Bank KYC asked for. "
        "Nothing else will be shared."
    )
    outcome = page.locator("#review-fields .review-identity")
    expect(outcome).to_contain_text("passport")
    for check in ("mrz_check_digits", "document_expiry", "name_match", "birthdate_match",
                  "face_match"):  # fmt: skip
        expect(outcome.locator(f"[data-check={check}]")).to_have_class(re.compile("passed"))
    expect(outcome.locator("[data-check=liveness_head_turn]")).to_have_count(1)
    assert page.locator("#step-review img, #step-review video").count() == 0  # no image shown
    person.check("review, identity", "32-review-identity")
    flow_id = urlsplit(page.url).path.rsplit("/", 1)[-1]
    kept = flow_keys(stack.raw_redis(), flow_id)
    assert not [key for key in kept if ":identity-" in key]  # images erased by the verification

    # The images left the page only encrypted: every identity request carried JWEs.
    posted = [
        request.post_data_json
        for request in person.watch.requests
        if "/identity/document" in request.url or "/identity/frames" in request.url
    ]
    images = [body["image"] for body in posted if "image" in body]
    images += [frame for body in posted for frame in body.get("frames", [])]
    assert len(images) == 7  # the passport and six frames, each a compact JWE
    assert all(COMPACT_JWE.fullmatch(image) for image in images)

    body = _partner_receives(person, kyc)
    evidence = body["identity_verification"]
    assert evidence["type"] == "document"
    assert evidence["document_details"]["type"] == "passport"
    assert body["data"] == {}
    person.watch.assert_only_hosts(stack.url, stub_partner.url)
    person.watch.assert_clean()


def test_a_replayed_still_photograph_fails_the_head_turn(
    site: Site,  # noqa: F811
    stub_partner: LiveServer,  # noqa: F811
    still_video: Path,
    material: dict[str, Path],
    playwright: Playwright,
    screens: Screens,  # noqa: F811
    axe_report: dict[str, list[str]],  # noqa: F811
) -> None:
    """The passport holder's photograph held still in front of the camera: the same face as
    the passport's, so only the challenge can tell, and it does, whatever the timing."""
    kyc = _kyc_share(site, stub_partner, "Bank KYC still", "kyc-still")
    with _fake_camera(playwright, still_video) as browser:
        person = _person_maker(browser, screens, axe_report)(site)
        page = person.page
        _verify_in_page(person, kyc, material["passport"])
        outcome = page.locator("#review-fields .review-identity")
        expect(outcome.locator("[data-check=face_match]")).to_have_class(re.compile("passed"))
        expect(outcome.locator("[data-check=liveness_head_turn]")).to_have_class(
            re.compile("failed")
        )
        person.check("review, identity failed", "33-review-identity-still")
        evidence = _partner_receives(person, kyc)["identity_verification"]
        checks = {c["check"]: c["passed"] for c in evidence["check_details"]}
        assert checks["face_match"] is True
        assert checks["liveness_head_turn"] is False
        person.watch.assert_clean()
