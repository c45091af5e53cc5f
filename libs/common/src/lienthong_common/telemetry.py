"""OpenTelemetry set up from the standard OTEL_* variables, and JSON logs with trace ids.

Traces: a TracerProvider exporting over OTLP when an endpoint is configured; database spans come
from SQLAlchemy engine events (see `instrument_sqlalchemy`). Metrics: a MeterProvider whose
Prometheus reader feeds prometheus_client's default registry, served by
`lienthong_common.metrics.serve_metrics` on the service's metrics port. Logs: one JSON object per
line with trace and span ids, scrubbed of credentials and of anything that looks like document
content (long base64 runs, PDF or XML bodies).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

_configured = False


def setup_telemetry(service_name: str) -> None:
    """Install a tracer provider once per process.

    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the service; spans are exported over
    OTLP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set and
    OTEL_TRACES_EXPORTER is not "none". Without an endpoint spans are still created, so trace
    ids appear in logs and responses, but nothing is sent anywhere.
    """
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("OTEL_SERVICE_NAME", f"lienthong-{service_name}")
    resource = Resource.create({})
    provider = TracerProvider(resource=resource)
    exporter_choice = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint and exporter_choice != "none":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    setup_metrics(resource)
    instrument_sqlalchemy()
    setup_logging(service_name)


def setup_metrics(resource: Resource) -> None:
    """A MeterProvider read by Prometheus (pull); OTEL_METRICS_EXPORTER=none turns it off."""
    if os.environ.get("OTEL_METRICS_EXPORTER", "prometheus") == "none":
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()]))


def shutdown_telemetry() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


# Credentials in any spelling a message might carry them: key=value, key: value, "key": "value",
# Authorization headers, bearer tokens and JWTs.
_SECRET = re.compile(
    r"(?i)((?:client_)?secret|password|passwd|token|access_token|authorization|api[_-]?key|jwt_secret)"
    r"(\"?\s*[=:]\s*\"?)(?:bearer\s+|basic\s+)?[^\s\",;&]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# Document content: base64 runs (attachments, packages), PDF bodies, XML elements with text.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")
_PDF_BODY = re.compile(r"%PDF-.*", re.DOTALL)
_PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", re.DOTALL)
MAX_MESSAGE_CHARS = 2000


def scrub(text: str) -> str:
    """A log message without credentials or document content."""
    text = _PEM.sub("[pem elided]", text)
    text = _PDF_BODY.sub("[pdf elided]", text)
    text = _JWT.sub("[jwt elided]", text)
    text = _BEARER.sub(r"\1 [elided]", text)
    text = _SECRET.sub(r"\1\2[elided]", text)
    text = _BASE64_RUN.sub(lambda m: f"[{len(m.group(0))} base64 chars elided]", text)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"… [{len(text) - MAX_MESSAGE_CHARS} chars elided]"
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the active trace and span ids, scrubbed (see `scrub`)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LIENTHONG_LOG_LEVEL", "INFO").upper())
    # kafka-python is chatty at INFO about every connection.
    logging.getLogger("kafka").setLevel(logging.WARNING)


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def current_traceparent() -> str:
    """The W3C traceparent of the active span ("" outside any trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def trace_id_of(traceparent: str) -> str:
    """The trace id inside a W3C traceparent ("" when it is not one)."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


def link_to_trace(traceparent: str, *, relation: str = "document") -> None:
    """Link the active span to another trace, e.g. a status update to its document's journey."""
    if not traceparent:
        return
    target = trace.get_current_span(propagate.extract({"traceparent": traceparent})).get_span_context()
    span = trace.get_current_span()
    if target.is_valid and span.is_recording() and target.trace_id != span.get_span_context().trace_id:
        span.add_link(target, {"lienthong.link": relation})


def set_document_attributes(
    *, document_id: str = "", agency_code: str = "", recipient_codes: list[str] | None = None
) -> None:
    """The lienthong.* attributes of the active span (the ones SREs search traces by)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    if document_id:
        span.set_attribute("lienthong.document.id", document_id)
    if agency_code:
        span.set_attribute("lienthong.agency.code", agency_code)
    if recipient_codes:
        span.set_attribute("lienthong.recipient.code", list(recipient_codes))


_sqlalchemy_instrumented = False
_sqlalchemy_tracer: trace.Tracer = trace.NoOpTracer()
_DB_SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite"}


# (engine, statement) -> the span name and attributes: the statements on a hot path are the same
# few strings every time (SQLAlchemy's compiled cache), so they are described once.
_statement_spans: dict[tuple[Any, str], tuple[str, dict[str, Any]]] = {}
_STATEMENT_SPANS_KEPT = 1024


def _describe_statement(engine: Any, statement: str) -> tuple[str, dict[str, Any]]:
    dialect = engine.dialect.name
    operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    url = engine.url
    attributes: dict[str, Any] = {
        "db.system.name": _DB_SYSTEMS.get(dialect, dialect),
        "db.operation.name": operation,
        "db.query.text": statement[:2000],
    }
    if url.database:
        attributes["db.namespace"] = os.path.basename(url.database) if dialect == "sqlite" else url.database
    if url.host:
        attributes["server.address"] = url.host
        if url.port:
            attributes["server.port"] = url.port
    return f"{operation} {attributes.get('db.namespace', dialect)}", attributes


def instrument_sqlalchemy(tracer_provider: trace.TracerProvider | None = None) -> None:
    """CLIENT spans for every SQL statement of every engine (database semantic conventions).

    The statement text is recorded with its placeholders, never the bound parameters, so no
    credential or document content reaches a span. (opentelemetry-instrumentation-sqlalchemy
    is not published for this OpenTelemetry release; these few engine events do the same.)
    """
    global _sqlalchemy_instrumented, _sqlalchemy_tracer
    _sqlalchemy_tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("lienthong.sqlalchemy")
    if _sqlalchemy_instrumented:
        return
    _sqlalchemy_instrumented = True
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if context is None:
            return
        engine = conn.engine
        described = _statement_spans.get((engine, statement))
        if described is None:
            described = _describe_statement(engine, statement)
            if len(_statement_spans) >= _STATEMENT_SPANS_KEPT:
                _statement_spans.clear()
            _statement_spans[(engine, statement)] = described
        name, attributes = described
        span = _sqlalchemy_tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        context._lienthong_span = span

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        span = getattr(context, "_lienthong_span", None)
        if span is not None:
            span.end()
            context._lienthong_span = None

    @event.listens_for(Engine, "handle_error")
    def _error(exception_context: Any) -> None:
        context = exception_context.execution_context
        span = getattr(context, "_lienthong_span", None)
        if span is not None:
            error = exception_context.original_exception
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
            span.end()
            context._lienthong_span = None


def event_attributes(event: Any) -> dict[str, Any]:
    """The lienthong.* span attributes of a platform event (an events_pb2.Event)."""
    attributes: dict[str, Any] = {}
    if event.document_id:
        attributes["lienthong.document.id"] = event.document_id
    kind = event.WhichOneof("payload")
    if not kind:
        return attributes
    attributes["lienthong.event.kind"] = kind
    payload = getattr(event, kind)
    sender = getattr(payload, "sender_code", "") or getattr(payload, "code", "")
    if sender:
        attributes["lienthong.agency.code"] = sender
    recipients = list(getattr(payload, "recipient_codes", []) or [])
    single = getattr(payload, "recipient_code", "")
    if single:
        recipients.append(single)
    if recipients:
        attributes["lienthong.recipient.code"] = recipients
    return attributes
