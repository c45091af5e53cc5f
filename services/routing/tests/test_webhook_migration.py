"""Migration 0004: receivers' replies stored before it are cut to their status; queued status
pushes lose the package they carried inline."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from lienthong_common.db import make_engine, upgrade_database
from lienthong_routing.main import MIGRATIONS_DIR


def insert(db: Connection, table: str, **values: object) -> None:
    columns = ", ".join(values)
    db.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


def test_old_bodies_are_scrubbed_and_queued_status_pushes_go_by_reference(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'routing.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0003")
    command.upgrade(config, "lienthong_common@head")
    inline = {"type": "status", "status": {"url": "/v1/documents/d/statuses/1", "package_base64": "PGVk"}}
    engine = make_engine(url)
    at = "2026-12-01 00:00:00"
    try:
        with engine.begin() as db:
            insert(
                db,
                "documents",
                id="d",
                sender_code="S",
                subject="",
                edxml_document_id="",
                business_doc_type=0,
                referenced_document_id="",
                recipient_codes="[]",
                state="routed",
                indication="",
                sub_indication="",
                refusal_reason="",
                created_at=at,
            )
            for item_id, kind, state, error, payload in [
                ("w1", "delivery", "dead_lettered", "HTTP 500: root:x:0:0:INTERNAL", "{}"),
                (
                    "w2",
                    "status",
                    "pending",
                    "ConnectError: [Errno 111] Connection refused",
                    json.dumps(inline),
                ),
                ("w3", "status", "pushed", "", json.dumps(inline)),
            ]:
                insert(
                    db,
                    "webhook_deliveries",
                    id=item_id,
                    agency_code="A",
                    document_id="d",
                    delivery_id="",
                    kind=kind,
                    payload=payload.encode(),
                    state=state,
                    attempts=1,
                    last_error=error,
                    next_attempt_at=at,
                    created_at=at,
                )
            for item_id, number, status, error in [
                ("w1", 1, 500, "HTTP 500: root:x:0:0:INTERNAL"),
                ("w1", 2, 302, "HTTP 302: <a href=x>"),
                ("w2", 1, 0, "ReadTimeout: timed out after 10 s"),
            ]:
                insert(
                    db,
                    "webhook_attempts",
                    webhook_delivery_id=item_id,
                    number=number,
                    at=at,
                    http_status=status,
                    error=error,
                    duration_ms=3,
                )
            insert(
                db,
                "status_entries",
                document_id="d",
                recipient_code="A",
                code="",
                state="push_dead_lettered",
                description="webhook push dead-lettered after 8 attempts: HTTP 500: root:x:0:0:INTERNAL",
                actor_code="",
                at=at,
            )
        upgrade_database(url, MIGRATIONS_DIR)
        with engine.connect() as db:
            errors = [r[0] for r in db.execute(text("SELECT error FROM webhook_attempts ORDER BY id"))]
            last = dict(db.execute(text("SELECT id, last_error FROM webhook_deliveries")).all())
            payloads = dict(db.execute(text("SELECT id, payload FROM webhook_deliveries")).all())
            [line] = db.execute(text("SELECT description FROM status_entries")).scalars()
    finally:
        engine.dispose()
    assert errors == ["HTTP 500", "HTTP 302 (redirects are not followed)", "timed out"]
    assert last == {"w1": "HTTP 500", "w2": "connection failed", "w3": ""}
    assert line == "webhook push dead-lettered after 8 attempts: HTTP 500"
    queued = json.loads(payloads["w2"])["status"]
    assert "package_base64" not in queued and queued["url"] == "/v1/documents/d/statuses/1"
    assert "package_base64" in json.loads(payloads["w3"])["status"]  # already pushed: a record of what went
