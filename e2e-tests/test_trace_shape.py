"""One document, one trace: the spans every service exported, checked against a table of edges.

As the OpenTelemetry demo's trace-based tests do, but with the Kafka edges included: each
consumer span is the child of the producer span of the service that queued the event, so the
whole journey (gateway → docstore → Kafka → sigverify → directory → routing → statistics) is one
trace. A later status update is a trace of its own, linked to the journey.
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
from otlp_receiver import ReceivedSpan, service_edges

from harness import DEPARTMENT, PROVINCE, RunningPlatform, eventually
from lienthong_common.metrics import METRIC_NAMES
from lienthong_sdk.demo import load_credentials

GRPC, KAFKA = ("CLIENT", "SERVER"), ("PRODUCER", "CONSUMER")

# (parent service, child service, (parent span kind, child span kind), what the edge is)
EXPECTED_EDGES = [
    ("gateway", "docstore", GRPC, "PutPackage stores the package"),
    ("docstore", "sigverify", KAFKA, "documents.submitted"),
    ("docstore", "statistics", KAFKA, "documents.submitted"),
    ("sigverify", "docstore", GRPC, "GetPackage fetches the package to verify"),
    ("sigverify", "directory", GRPC, "CheckCertificate binds the signer to the sender"),
    ("sigverify", "routing", KAFKA, "documents.verified"),
    ("sigverify", "statistics", KAFKA, "documents.verified"),
    ("routing", "directory", GRPC, "ResolveRecipients"),
    ("routing", "statistics", KAFKA, "deliveries"),
]


def svc(name: str) -> str:
    return f"lienthong-{name}"


def edges_with_kinds(spans: list[ReceivedSpan]) -> set[tuple[str, str, tuple[str, str]]]:
    by_id = {s.span_id: s for s in spans}
    found = set()
    for span in spans:
        parent = by_id.get(span.parent_span_id)
        if parent is not None and parent.service != span.service:
            found.add((parent.service, span.service, (parent.kind, span.kind)))
    return found


def missing_edges(spans: list[ReceivedSpan]) -> list[str]:
    found = edges_with_kinds(spans)
    return [
        f"{parent} → {child} ({what})"
        for parent, child, kinds, what in EXPECTED_EDGES
        if (svc(parent), svc(child), kinds) not in found
    ]


def describe(spans: list[ReceivedSpan]) -> str:
    by_id = {s.span_id: s for s in spans}
    lines = []
    for s in sorted(spans, key=lambda s: s.start_ns):
        parent = by_id.get(s.parent_span_id)
        origin = f"{parent.service}:{parent.name}" if parent else (s.parent_span_id or "root")
        lines.append(f"  {s.service:<22} {s.kind:<8} {s.name:<50} <- {origin}")
    return "\n".join(lines)


def test_one_document_is_one_trace_with_every_edge(
    platform: RunningPlatform, signed_pdf, tmp_path: Path
) -> None:
    receiver = platform.receiver
    assert receiver is not None, "the harness starts every platform with the OTLP receiver"
    pdf = signed_pdf(PROVINCE, "Công văn đo vết")
    sent = platform.cli_json(
        "send", "--as", PROVINCE, "--to", DEPARTMENT, "--subject", "Về việc đo vết", "--attach", str(pdf)
    )
    doc_id = sent["id"]

    # The trace id is findable from the document id: the API returns it and `track` prints it.
    tracked = eventually(
        lambda: (d := platform.cli_json("track", doc_id, "--as", PROVINCE))["state"] != "verifying" and d,
        timeout=90,
        what="the document to be verified and routed",
    )
    assert tracked["state"] == "routed", tracked
    trace_id = tracked["trace_id"]
    assert trace_id and len(trace_id) == 32
    assert f"trace     {trace_id}" in platform.cli("track", doc_id, "--as", PROVINCE).stdout

    # Every expected service edge is in that one trace (spans arrive in batches).
    try:
        eventually(
            lambda: not missing_edges(receiver.trace(trace_id)), timeout=30, what="every expected edge"
        )
    except AssertionError:
        spans = receiver.trace(trace_id)
        raise AssertionError(
            f"trace {trace_id} lacks {missing_edges(spans)}; it has:\n{describe(spans)}"
        ) from None
    journey = receiver.trace(trace_id)
    assert {svc(s) for s in ("gateway", "docstore", "sigverify", "directory", "routing", "statistics")} <= {
        s.service for s in journey
    }

    # Every Kafka span about this document belongs to the journey's trace, and each consumer
    # span links to the producer span it is the child of.
    messaging = [
        s for s in receiver.spans() if s.attributes.get("lienthong.document.id") == doc_id and s.kind in KAFKA
    ]
    assert messaging and {s.trace_id for s in messaging} == {trace_id}
    for consumer in (s for s in messaging if s.kind == "CONSUMER"):
        assert (trace_id, consumer.parent_span_id) in consumer.links

    # Semantic conventions: HTTP, RPC, messaging and database spans, plus lienthong.* attributes.
    assert any(
        s.kind == "SERVER" and s.service == svc("gateway") and "http.route" in s.attributes for s in journey
    )
    assert any(s.attributes.get("rpc.system") == "grpc" and s.attributes.get("rpc.service") for s in journey)
    assert any(
        s.attributes.get("messaging.system") == "kafka" and s.attributes.get("messaging.destination.name")
        for s in journey
    )
    assert any(s.attributes.get("db.system.name") and s.attributes.get("db.query.text") for s in journey)
    consumers = [s for s in journey if s.kind == "CONSUMER"]
    assert all(s.attributes.get("lienthong.agency.code") == PROVINCE for s in consumers)
    assert any(DEPARTMENT in (s.attributes.get("lienthong.recipient.code") or []) for s in consumers)
    verdicts = [
        s.attributes.get("lienthong.verdict.indication") for s in journey if s.service == svc("sigverify")
    ]
    assert "TOTAL_PASSED" in verdicts

    # A later status update is a trace of its own, linked to the journey.
    before = {s.span_id for s in receiver.spans()}
    platform.cli("status", doc_id, "--as", DEPARTMENT, "--code", "03")

    def linked_update() -> set[str]:
        return {
            s.trace_id
            for s in receiver.spans()
            if s.span_id not in before and s.trace_id != trace_id and any(t == trace_id for t, _ in s.links)
        }

    update_traces = eventually(linked_update, timeout=20, what="a status-update trace linked to the journey")
    assert trace_id not in update_traces

    # The edges helper agrees with the table (a compact form for failure messages).
    assert (svc("sigverify"), svc("routing")) in service_edges(journey)

    # Metrics: the services export what the dashboards read.
    def scrape(service: str) -> str:
        port = platform.local.metrics_port(service)
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    exported = eventually(
        lambda: (
            (text := scrape("statistics") + scrape("sigverify") + scrape("routing"))
            and "lienthong_pipeline_duration_seconds_bucket" in text
            and text
        ),
        timeout=20,
        what="pipeline latency in statistics' metrics",
    )
    for name in (
        "rpc_server_duration_seconds_bucket",
        "messaging_process_duration_seconds_bucket",
        "lienthong_verdicts_total",
        "lienthong_consumer_lag",
        "lienthong_outbox_backlog",
        'stage="submitted_to_delivered"',
    ):
        assert name in exported, name
    assert {"lienthong_verdicts_total", "lienthong_pipeline_duration_seconds"} <= METRIC_NAMES

    # Logs: JSON with trace ids, and neither credentials nor document content.
    assert f'"trace_id": "{trace_id}"' in platform.local.log_path("sigverify").read_text(errors="replace")
    secrets = list(load_credentials(platform.local.data_dir).values())
    pdf_b64 = base64.b64encode(pdf.read_bytes()[:3000]).decode()[1000:1200]
    for service in ("gateway", "docstore", "sigverify", "directory", "routing", "statistics"):
        log = platform.local.log_path(service).read_text(errors="replace")
        for secret in secrets:
            assert secret not in log, f"{service} logged an agency secret"
        assert pdf_b64 not in log, f"{service} logged attachment content"
        assert "%PDF-" not in log, f"{service} logged a PDF"
