"""The verification engine: worker processes, the verdict cache, batches through the consumer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sigverify_factories import SENDER, FakeBindings, make_package, make_settings, pdf_attachment
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.kafka import EventConsumer
from lienthong_common.outbox import TOPIC_SUBMITTED, new_event
from lienthong_common.pades import Indication, PdfVerifier, sign_pdf
from lienthong_common.pdfgen import make_pdf
from lienthong_common.pki import DevPki, IssuedIdentity
from lienthong_common.settings import KafkaSettings
from lienthong_sigverify import repository
from lienthong_sigverify.events import SubmittedDocuments
from lienthong_sigverify.models import OUTBOX
from lienthong_sigverify.trust import TrustSnapshot, TrustStore
from lienthong_sigverify.verification import VerificationEngine, VerifierConfig


@dataclass
class MutableTrust:
    current: TrustSnapshot
    calls: list[bool] = field(default_factory=list)

    def snapshot(self, *, seed: bool = True) -> TrustSnapshot:
        self.calls.append(seed)
        return self.current


def _config(tmp_path: Path) -> VerifierConfig:
    return VerifierConfig(
        revocation="off", revocation_cache_dir=str(tmp_path / "rc"), allow_fetching=False, fetch_timeout=1.0
    )


def test_pool_and_inline_agree_and_cache_hits(
    pki: DevPki, signed_pdf: bytes, untrusted_pki: DevPki, tmp_path: Path
) -> None:
    trust = MutableTrust(TrustSnapshot(1, (pki.root_cert_pem,)))
    pooled = VerificationEngine(trust=trust, config=_config(tmp_path), workers=2)
    inline = VerificationEngine(trust=trust, config=_config(tmp_path), workers=0)
    try:
        assert pooled.prefetch([signed_pdf]) == 1
        assert pooled.prefetch([signed_pdf]) == 0  # already in flight
        from_pool = pooled.verify(signed_pdf)
        assert from_pool == inline.verify(signed_pdf)
        assert from_pool.indication is Indication.TOTAL_PASSED
        assert pooled.verify(signed_pdf) is from_pool  # cached
        assert pooled.hits == 1

        # A new trust-store version is a new cache key: the removed root no longer trusted.
        trust.current = TrustSnapshot(2, (untrusted_pki.root_cert_pem,))
        verdict = pooled.verify(signed_pdf)
        assert verdict.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
        # INDETERMINATE is never cached: asked again, it is computed again.
        misses = pooled.misses
        pooled.verify(signed_pdf)
        assert pooled.misses == misses + 1
    finally:
        pooled.close()


def test_cached_verdict_is_keyed_by_policy(pki: DevPki, signed_pdf: bytes, tmp_path: Path) -> None:
    trust = MutableTrust(TrustSnapshot(1, (pki.root_cert_pem,)))
    off = VerificationEngine(trust=trust, config=_config(tmp_path), workers=0)
    hard = VerificationEngine(
        trust=trust,
        config=VerifierConfig("hard-fail", str(tmp_path / "rc"), allow_fetching=False, fetch_timeout=1.0),
        workers=0,
    )
    assert off.policy != hard.policy
    assert off.verify(signed_pdf).passed
    assert hard.verify(signed_pdf).sub_indication == "TRY_LATER"  # dev certificates declare no CRL


def test_a_polled_batch_is_verified_in_parallel_and_recorded_once_per_event(
    sessions: sessionmaker[Session], pki: DevPki, signer: IssuedIdentity, tmp_path: Path
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root_cert_pem)

    store = TrustStore(sessions=sessions, settings=make_settings(tmp_path, roots=[root]))
    engine = VerificationEngine(trust=store, config=_config(tmp_path), workers=2)
    bindings = FakeBindings()
    bindings.register(signer, SENDER)
    packages = {
        f"doc-{i}": make_package([pdf_attachment(sign_pdf(make_pdf(f"Công văn {i}"), signer))])
        for i in range(4)
    }
    fetched: list[str] = []

    def fetch(document_id: str) -> bytes:
        fetched.append(document_id)
        return packages[document_id]

    documents = SubmittedDocuments(
        fetch_package=fetch, verifier=engine, binding_check=bindings, sessions=sessions
    )
    consumer = EventConsumer(
        service="sigverify",
        group="lienthong-sigverify",
        topics=[TOPIC_SUBMITTED],
        settings=KafkaSettings(),
        sessions=sessions,
        outbox=OUTBOX,
        handler=documents.handle,
        before_batch=documents.prefetch,
    )
    events = []
    for document_id in packages:
        event = new_event(document_id)
        event.submitted.sender_code = SENDER
        events.append(event)
    try:
        # What EventConsumer._run does with one poll: prepare the batch, then handle each event.
        consumer._prepare([_Record(e.SerializeToString()) for e in events])
        assert sorted(fetched) == sorted(packages)  # fetched once, during the prefetch
        for event in events:
            assert consumer.handle(TOPIC_SUBMITTED, event.SerializeToString(), None)
        for event in events:  # redelivery: no-op
            assert not consumer.handle(TOPIC_SUBMITTED, event.SerializeToString(), None)
    finally:
        engine.close()
    assert sorted(fetched) == sorted(packages)
    with sessions() as session:
        for document_id in packages:
            stored = repository.get_report(session, document_id=document_id)
            assert stored is not None and stored.report.passed, stored
            assert stored.report.trust_store_version == 1
            assert stored.report.policy == "revocation=off,offline,envelope=if-present"
        assert session.execute(select(func.count()).select_from(OUTBOX.table)).scalar_one() == 4


@dataclass
class _Record:
    """What kafka-python hands the consumer, as far as EventConsumer reads it."""

    value: bytes
    topic: str = TOPIC_SUBMITTED
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def test_inline_verifier_still_accepted(signed_pdf: bytes, verifier: PdfVerifier) -> None:
    assert verifier.verify(signed_pdf).passed


def test_sha1_pades_is_refused_unless_the_setting_allows_it() -> None:
    from lienthong_common.settings import Settings

    settings = Settings()
    assert settings.sigverify.allow_sha1_pades is False
    config = VerifierConfig.from_settings(settings)
    assert config.allow_sha1 is False and ",sha1" not in config.policy
    allowed = Settings.model_validate({"sigverify": {"allow_sha1_pades": True}})
    assert VerifierConfig.from_settings(allowed).policy.endswith(",sha1")
