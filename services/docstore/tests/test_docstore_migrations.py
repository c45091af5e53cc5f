"""The Alembic migrations build a fresh database that matches the models and can be used."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from lienthong_common import db
from lienthong_common.clock import now_utc
from lienthong_docstore.main import MIGRATIONS
from lienthong_docstore.models import Base, Document, DocumentAttachment


def test_migrations_on_a_fresh_database_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    db.upgrade_database(url, MIGRATIONS)
    db.upgrade_database(url, MIGRATIONS)  # a second run is a no-op

    engine = db.make_engine(url)
    try:
        assert {"documents", "document_attachments", "outbox", "processed_events"} <= set(
            inspect(engine).get_table_names()
        )
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []

        sessions = db.make_session_factory(engine)
        with db.transaction(sessions) as session:
            session.add(
                Document(
                    id="d1",
                    sender_code="000.00.00.H49",
                    recipient_codes=["000.00.24.H44"],
                    edxml_document_id="000.00.00.H49,2025/07/01,1/UBND-VP",
                    subject="Trích yếu",
                    package_sha256="0" * 64,
                    package_size=10,
                    warnings=["a warning"],
                    business_doc_type=0,
                    submitted_at=now_utc(),
                    attachments=[
                        DocumentAttachment(
                            position=0,
                            content_id="cid:1",
                            name="a.pdf",
                            content_type="application/pdf",
                            sha256="1" * 64,
                            size=3,
                        )
                    ],
                )
            )
        with db.transaction(sessions) as session:
            stored = session.get(Document, "d1")
            assert stored is not None
            assert stored.recipient_codes == ["000.00.24.H44"]
            assert [a.name for a in stored.attachments] == ["a.pdf"]
    finally:
        engine.dispose()
