"""Identity verification in a share: the person's steps after collection, when the partner
asked for it (docs/identity-verification.md, "In a share").

1. `consent`: the biometric-consent screen's answer (GDPR Art. 9). No image is accepted before
   a yes; a no ends the verification (the partner learns it was declined).
2. `document`, `frames`: the document photo and the live frames, each a compact JWE made in the
   browser with the broker's key (RSA-OAEP + A256GCM, like credentials) within its own size
   limit (`Settings.max_image_envelope_bytes`), each used once, stored sealed as received.
3. `verify`: the images are taken out of Redis (erased there at once, whatever comes next),
   opened in the HSM, and checked by the engine (`sharelock.identity`) on one dedicated thread
   (the engine is not thread-safe and takes a couple of CPU seconds: never the event loop).
   The evidence (OpenID IA, no image, no value read) is kept with the collected data for the
   review and the delivery; the identity it was compared with is erased. A refused image
   (truncated, too large, no zone, no face) is a 400 with a fixed message; nothing is kept and
   the person may capture again.

`sharelock.identity` (OpenCV, dlib, Tesseract) is imported only when a verification runs: the
broker runs without the `identity` extra, and says so (503) if a verification is asked of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from sharelock.audit import EventType
from sharelock.blocking import DedicatedThreads
from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.errors import ServiceUnavailable
from sharelock.flow.envelopes import Envelopes
from sharelock.flow.errors import FlowConflict, FlowError, FlowNotFound
from sharelock.flow.identity_steps import reviewed
from sharelock.flow.ports import AsyncAudit
from sharelock.flow.record_types import CollectedData, HeldIdentity, IdentityImages
from sharelock.flow.records import (
    COLLECTED,
    IDENTITY_DOCUMENT,
    IDENTITY_FRAMES,
    IDENTITY_HELD,
    Records,
)
from sharelock.flow.state import FlowState, Status, flow_ref

if TYPE_CHECKING:
    from sharelock.identity import IdentityVerifier

T = TypeVar("T")
MIN_FRAMES, MAX_FRAMES = 2, 12  # as the engine's policy (`VerificationPolicy.max_frames`)
IMAGE_CHECK_FAILED = "identity verification"


class IdentityThread:
    """One thread for the engine, which is built on it at first use (about a second: the
    models) and only ever called from it."""

    def __init__(self, build: Callable[[], IdentityVerifier]) -> None:
        self._build = build
        self._engine: IdentityVerifier | None = None
        self._thread = DedicatedThreads("sharelock-idv", 1)

    def engine(self) -> IdentityVerifier:
        """On the thread only."""
        if self._engine is None:
            self._engine = self._build()
        return self._engine

    async def run(self, fn: Callable[[], T]) -> T:
        return await self._thread.run(fn)


def default_engine(clock: Clock) -> Callable[[], IdentityVerifier]:
    def build() -> IdentityVerifier:
        try:
            from sharelock.identity import DlibFaceEngine, IdentityVerifier, TesseractMrzReader
        except ImportError:
            raise ServiceUnavailable("identity verification is not installed here") from None
        return IdentityVerifier(TesseractMrzReader(), DlibFaceEngine(), clock=clock)

    return build


def _check(
    held: HeldIdentity, document: bytes, frames: Sequence[bytes], engine: IdentityVerifier
) -> dict[str, Any]:
    """The engine's evidence, run on the identity thread. Its errors carry fixed messages
    (which input, which limit: `sharelock.identity.errors`), safe to show."""
    from sharelock.identity import EngineUnavailable, HeldIdentity, IdentityError

    try:
        birthdate = date.fromisoformat(held.birthdate) if held.birthdate else None
    except ValueError:
        birthdate = None
    source = HeldIdentity(held.given_name, held.family_name, birthdate)
    try:
        verification = engine.verify(document, frames, source)
    except EngineUnavailable:
        raise ServiceUnavailable("identity verification is not available here") from None
    except IdentityError as exc:
        raise FlowError(f"{IMAGE_CHECK_FAILED}: {exc}") from None
    return verification.evidence.to_claims()  # the zone's values (`document`) stay here


class IdentityChecks:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        envelopes: Envelopes,
        clock: Clock,
        audit: AsyncAudit,
        engine: Callable[[], IdentityVerifier] | None = None,
    ) -> None:
        self.settings = settings
        self.records = records
        self.envelopes = envelopes
        self.audit = audit
        self.thread = IdentityThread(engine or default_engine(clock))

    async def _record(
        self, flow: FlowState, event: EventType, outcome: str, detail: str | None = None
    ) -> None:
        """The step's audit row, before what it records takes effect (pseudonymous fields
        only: the flow's reference, partner, source and login hash)."""
        await self.audit.record(
            event,
            client_id=flow.request.client_id,
            data_source=flow.data_source,
            login_hash=flow.login_hash,
            flow_ref=flow_ref(flow.flow_id),
            outcome=outcome,
            detail_code=detail,
        )

    async def _collected(self, flow: FlowState) -> CollectedData:
        if flow.request.identity_verification is None:
            raise FlowError("this share asks no identity verification")
        if flow.status is not Status.COLLECTED:
            raise FlowConflict(f"no identity verification while the flow is {flow.status.value}")
        collected = await self.records.get(COLLECTED, flow.flow_id)
        if collected is None or collected.identity is None:
            raise FlowNotFound("the collected data has expired")
        if collected.identity.get("evidence") is not None:
            raise FlowConflict("the identity verification is done")
        return collected

    async def _consented(self, flow: FlowState) -> CollectedData:
        collected = await self._collected(flow)
        if collected.identity is None or collected.identity.get("consent") is not True:
            raise FlowConflict("biometric consent has not been given")
        return collected

    async def _set_identity(self, flow: FlowState, **changes: Any) -> CollectedData:
        def change(current: CollectedData) -> CollectedData:
            identity = {**(current.identity or {}), **changes}
            return CollectedData(current.data, current.collected_at, current.checks, identity)

        updated = await self.records.update(COLLECTED, flow.flow_id, change)
        if updated is None:
            raise FlowNotFound("the collected data has expired")
        return updated

    async def consent(self, flow: FlowState, agree: bool) -> dict[str, Any]:
        """The answer on the biometric-consent screen. A no erases what verification kept."""
        collected = await self._collected(flow)
        if collected.identity is not None and collected.identity.get("consent") is not None:
            raise FlowConflict("biometric consent has been answered")
        await self._record(flow, EventType.IDENTITY_CONSENT, "given" if agree else "refused")
        if not agree:
            await self._erase(flow, held=True)
        updated = await self._set_identity(flow, consent=agree)
        return reviewed(flow.request, updated.identity)

    async def _accept(self, flow: FlowState, envelope: str) -> None:
        await self.envelopes.remember(
            envelope, until=flow.expires_at, max_bytes=self.settings.max_image_envelope_bytes
        )

    async def document(self, flow: FlowState, envelope: str) -> dict[str, Any]:
        await self._consented(flow)
        await self._accept(flow, envelope)
        await self.records.put(
            IDENTITY_DOCUMENT, flow.flow_id, envelope.encode("ascii"), until=flow.expires_at
        )
        return {"status": "document_received"}

    async def frames(self, flow: FlowState, envelopes: Sequence[str]) -> dict[str, Any]:
        await self._consented(flow)
        if not MIN_FRAMES <= len(envelopes) <= MAX_FRAMES:
            raise FlowError(f"send {MIN_FRAMES} to {MAX_FRAMES} live frames")
        for envelope in envelopes:
            await self._accept(flow, envelope)
        images = IdentityImages(list(envelopes))
        await self.records.put(IDENTITY_FRAMES, flow.flow_id, images, until=flow.expires_at)
        return {"status": "frames_received", "frames": len(envelopes)}

    async def _erase(self, flow: FlowState, *, held: bool) -> None:
        kinds = (IDENTITY_DOCUMENT, IDENTITY_FRAMES, *((IDENTITY_HELD,) if held else ()))
        await self.records.delete_all([(kind, flow.flow_id) for kind in kinds])

    async def _open(self, envelope: str) -> bytes:
        limit = self.settings.max_image_envelope_bytes
        with await self.envelopes.open(envelope.encode("ascii"), max_bytes=limit) as opened:
            return bytes(opened.view())

    async def verify(self, flow: FlowState) -> dict[str, Any]:
        """Run the verification on what was captured; the images are erased first."""
        await self._consented(flow)
        # The images are taken from Redis (read and deleted at once), whatever the outcome.
        document = await self.records.take(IDENTITY_DOCUMENT, flow.flow_id)
        frames = await self.records.take(IDENTITY_FRAMES, flow.flow_id)
        held = await self.records.get(IDENTITY_HELD, flow.flow_id)
        if held is None:
            raise FlowNotFound("the identity to compare with has expired")
        if document is None or frames is None:
            raise FlowConflict("capture the document and the live frames first")
        document_image = await self._open(document.decode("ascii"))
        frame_images = [await self._open(envelope) for envelope in frames.envelopes]
        thread = self.thread
        evidence = await thread.run(
            lambda: _check(held, document_image, frame_images, thread.engine())
        )
        failed = [c["check"] for c in evidence["check_details"] if not c["passed"]]
        await self._record(
            flow,
            EventType.IDENTITY_VERIFIED,
            "failed" if failed else "verified",
            _detail(failed[0]) if failed else None,
        )
        updated = await self._set_identity(flow, evidence=evidence)
        await self._erase(flow, held=True)
        return reviewed(flow.request, updated.identity)


def _detail(check: str) -> str:
    """A check's name as an audit code ([a-z_], at most 40)."""
    code = "".join(c if c.isalpha() else "_" for c in check.lower())[:40].strip("_")
    return code or "check"
