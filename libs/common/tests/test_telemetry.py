"""Telemetry: the metrics the services export, the dashboards and rules over them, scrubbed logs,
database spans and the pipeline clock."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.orm import sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common import metrics, telemetry
from lienthong_common.outbox import TOPIC_DELIVERIES, TOPIC_SUBMITTED, TOPIC_VERIFIED, Outbox, new_event
from lienthong_common.telemetry import JsonFormatter, scrub

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "dashboards" / "lienthong.json"
RULES = ROOT / "dashboards" / "lienthong-rules.yaml"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Prometheus text after one sample of every instrument, from a private MeterProvider."""
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(metrics, "_instruments", metrics._create(provider.get_meter("test")))
    monkeypatch.setattr(metrics, "_lag", {})
    monkeypatch.setattr(metrics, "_outboxes", [])
    monkeypatch.setattr(metrics, "_overdue_source", [])
    monkeypatch.setattr(metrics, "PIPELINE", metrics.PipelineClock())

    engine = create_engine("sqlite://")
    outbox = Outbox.for_metadata(MetaData())
    outbox.table.metadata.create_all(engine)
    sessions = sessionmaker(bind=engine)
    metrics.watch_outbox("docstore", sessions, outbox)
    metrics.set_overdue_acknowledgements_source(lambda: [(3, {"recipient_province": "H49"})])
    metrics.set_consumer_lag(group="lienthong-routing", topic=TOPIC_VERIFIED, partition=0, lag=7)

    for event, topic in journey_events("doc-1"):
        metrics.observe_published(topic, event.SerializeToString())
        metrics.observe_consumed(
            group="lienthong-statistics", topic=topic, event=event, seconds=0.01, outcome="handled"
        )
    refused = new_event("doc-2")
    refused.refused.indication = "TOTAL_FAILED"
    metrics.observe_published(TOPIC_DELIVERIES, refused.SerializeToString())
    call_grpc_through_interceptor()
    try:
        yield generate_latest(REGISTRY).decode()
    finally:
        provider.shutdown()  # also unregisters the reader's collector


def journey_events(document_id: str) -> list[tuple[events_pb2.Event, str]]:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    submitted = new_event(document_id, t0)
    submitted.submitted.sender_code = "000.00.00.H49"
    submitted.submitted.recipient_codes.append("000.00.02.H49")
    verified = new_event(document_id, t0 + timedelta(seconds=2))
    verified.verified.indication = "TOTAL_PASSED"
    delivered = new_event(document_id, t0 + timedelta(seconds=3))
    delivered.delivery_updated.recipient_code = "000.00.02.H49"
    delivered.delivery_updated.state = "delivered"
    acknowledged = new_event(document_id, t0 + timedelta(hours=2))
    acknowledged.delivery_updated.recipient_code = "000.00.02.H49"
    acknowledged.delivery_updated.state = "accepted"
    acknowledged.delivery_updated.previous_state = "delivered"
    acknowledged.delivery_updated.status_code = "03"
    return [
        (submitted, TOPIC_SUBMITTED),
        (verified, TOPIC_VERIFIED),
        (delivered, TOPIC_DELIVERIES),
        (acknowledged, TOPIC_DELIVERIES),
    ]


def call_grpc_through_interceptor() -> None:
    def say(request: bytes, context: grpc.ServicerContext) -> bytes:
        if request == b"fail":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        return request

    handler = grpc.method_handlers_generic_handler(
        "test.v1.Echo",
        {"Say": grpc.unary_unary_rpc_method_handler(say, lambda b: b, lambda b: b)},
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=[metrics.GrpcServerMetrics()]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            say_stub = channel.unary_unary("/test.v1.Echo/Say")
            assert say_stub(b"hello", timeout=5) == b"hello"
            with pytest.raises(grpc.RpcError):
                say_stub(b"fail", timeout=5)
    finally:
        server.stop(0)


def series_names(exposition: str) -> set[str]:
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def base_name(series: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_created"):
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_every_listed_metric_is_exported_under_its_prometheus_name(exported: str) -> None:
    names = {base_name(n) for n in series_names(exposition=exported)}
    assert metrics.METRIC_NAMES <= names, metrics.METRIC_NAMES - names
    assert 'rpc_grpc_status_code="5"' in exported  # NOT_FOUND
    assert 'rpc_grpc_status_code="0"' in exported
    assert re.search(r'lienthong_verdicts_total\{[^}]*indication="TOTAL_PASSED"', exported)
    assert re.search(r'lienthong_outbox_backlog\{[^}]*service="docstore"[^}]*\} 0\.0', exported)
    assert re.search(
        r'lienthong_acknowledgements_overdue\{[^}]*recipient_province="H49"[^}]*\} 3\.0', exported
    )


def test_pipeline_clock_measures_every_stage_from_occurred_at() -> None:
    seen: list[tuple[str, float]] = []
    clock = metrics.PipelineClock(record=lambda stage, seconds: seen.append((stage, seconds)))
    for event, _topic in journey_events("doc-9"):
        clock.observe(event)
    assert dict(seen) == {
        "submitted_to_verified": 2.0,
        "verified_to_delivered": 1.0,
        "submitted_to_delivered": 3.0,
        "delivered_to_acknowledged": 2 * 3600 - 3.0,
    }
    # A redelivered acknowledgement is not counted twice; memory stays bounded.
    clock.observe(journey_events("doc-9")[3][0])
    assert len(seen) == 4
    small = metrics.PipelineClock(capacity=2, record=lambda *_: None)
    for n in range(5):
        small.observe(journey_events(f"doc-{n}")[0][0])
    assert len(small._journeys) == 2


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers followed by `{` or `[`, or bare)."""
    without_strings = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    without_groupings = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_strings
    )
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    functions = {"sum", "rate", "increase", "histogram_quantile", "max", "min", "avg", "and", "or", "unless"}
    return {t for t in tokens if t not in functions and not t.startswith("lienthong:") and "_" in t}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]]


def test_dashboard_and_rules_reference_only_exported_metrics(exported: str) -> None:
    known = {base_name(n) for n in series_names(exported)} | metrics.GATEWAY_METRIC_NAMES
    labels = set(re.findall(r"([a-z_]+)=\"", exported)) | {
        "le",
        "route",
        "method",
        "status",
        "sender",
        "code",
    }
    exprs = dashboard_exprs() + [r["expr"] for r in rules()]
    assert len(exprs) > 20
    for expr in exprs:
        for name in promql_metric_names(expr):
            assert base_name(name) in known, f"{name} in {expr!r} is not exported"
        used = [x.strip() for g in re.findall(r"\bby\s*\(([^)]*)\)", expr) for x in g.split(",")]
        used += re.findall(r"([a-zA-Z_]+)\s*(?:=~|!=|!~|=)\s*\"", expr)
        for label in used:
            assert label in labels, f"label {label} in {expr!r} is not exported"


def test_dashboard_and_rules_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["panels"]
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("submitted", "latency", "refused", "lag", "backlog", "overdue", "verdicts", "grpc"):
        assert topic in titles, topic
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for rule in rules():
        assert ("record" in rule) != ("alert" in rule)
        assert rule["expr"].strip()
    alerts = {r["alert"] for r in rules() if "alert" in r}
    assert {"LienthongDeliverySLOBreached", "LienthongAcknowledgementsOverdue"} <= alerts


def log_line(message: str, *args: Any, exc: BaseException | None = None) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args, None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return JsonFormatter("test").format(record)


def test_logs_carry_no_secrets_and_no_document_content() -> None:
    secret = "s3cr3t-Value-9f8e7d"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIwMDAuMDAuMDAuSDQ5In0.c2lnbmF0dXJlLXZhbHVl"
    attachment = "JVBERi0xLjcKJeLjz9MK" * 20
    lines = [
        log_line("client_secret=%s accepted", secret),
        log_line('body {"secret": "%s", "grant_type": "client_credentials"}', secret),
        log_line("Authorization: Bearer %s", jwt),
        log_line("token %s issued", jwt),
        log_line("password: %s", secret),
        log_line("package <Attachment>%s</Attachment>", attachment),
        log_line("raw %s", "%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj"),
        log_line("key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"),
        log_line("x" * 5000),
    ]
    try:
        raise ValueError(f"could not parse secret={secret}")
    except ValueError as error:
        lines.append(log_line("failed", exc=error))
    for line in lines:
        entry = json.loads(line)
        assert secret not in line and jwt not in line and attachment[:200] not in line
        assert "%PDF-" not in line and "MIIEvQIBADANBg" not in line
        assert len(entry["message"]) < 2100
    assert "grant_type" in lines[1]  # the rest of the message survives
    assert scrub("document 0f1e2d accepted by 000.00.02.H49") == "document 0f1e2d accepted by 000.00.02.H49"


def test_logs_carry_trace_and_span_ids() -> None:
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("work") as span:
        entry = json.loads(log_line("inside"))
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert entry["span_id"] == format(span.get_span_context().span_id, "016x")


def test_database_spans_follow_the_semantic_conventions() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.instrument_sqlalchemy(provider)
    engine = create_engine("sqlite://")
    with provider.get_tracer("t").start_as_current_span("parent"), engine.connect() as connection:
        connection.execute(text("SELECT :secret"), {"secret": "s3cr3t-param"})
    db_spans = [s for s in exporter.get_finished_spans() if s.attributes and "db.system.name" in s.attributes]
    assert db_spans, [s.name for s in exporter.get_finished_spans()]
    span = db_spans[0]
    assert span.kind == trace.SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["db.system.name"] == "sqlite"
    assert span.attributes["db.operation.name"] == "SELECT"
    assert "s3cr3t-param" not in json.dumps(dict(span.attributes))
    assert span.parent is not None


def test_a_status_update_links_to_the_document_trace() -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("submit"):
        traceparent = telemetry.current_traceparent()
    journey = telemetry.trace_id_of(traceparent)
    assert len(journey) == 32
    with tracer.start_as_current_span("status") as span:
        telemetry.link_to_trace(traceparent)
    assert [format(link.context.trace_id, "032x") for link in span.links] == [journey]  # type: ignore[attr-defined]
    assert telemetry.trace_id_of("garbage") == ""
