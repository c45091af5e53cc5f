"""The platform's OpenTelemetry metrics, exported for Prometheus.

Every service process installs a MeterProvider with a Prometheus reader (telemetry.setup_telemetry)
and serves it on its metrics port (`LIENTHONG_METRICS__PORT`, see `serve_metrics`). What is
measured, and where:

- RED per service and operation: `rpc.server.duration` (gRPC server interceptor, every service),
  `messaging.process.duration` (every Kafka consumer), the gateway's HTTP histogram on its own
  `/metrics`.
- Pipeline latency: `lienthong.pipeline.duration{stage}` from the events' `occurred_at`, observed by
  a process that consumes both ends of a stage (the statistics service reads every topic):
  submitted_to_verified, verified_to_delivered, submitted_to_delivered, delivered_to_acknowledged.
- Kafka consumer lag per partition and outbox backlog (rows and age of the oldest) per service.
- Verdicts by indication, refusals and business statuses, counted when their events are published.
- Overdue acknowledgements: a gauge whose value the routing service provides through
  `set_overdue_acknowledgements_source`.

`METRIC_NAMES` lists every Prometheus series name these instruments produce; the dashboard and
rules test checks that they reference nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lienthong.events.v1 import events_pb2
from lienthong_common.settings import MetricsSettings

log = logging.getLogger(__name__)

METER_NAME = "lienthong"

# Seconds; from a fast local hop to the same-working-day acknowledgement.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
PIPELINE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600, 4 * 3600, 8 * 3600, 86400)

STAGE_SUBMITTED_TO_VERIFIED = "submitted_to_verified"
STAGE_VERIFIED_TO_DELIVERED = "verified_to_delivered"
STAGE_SUBMITTED_TO_DELIVERED = "submitted_to_delivered"
STAGE_DELIVERED_TO_ACKNOWLEDGED = "delivered_to_acknowledged"
STAGES = (
    STAGE_SUBMITTED_TO_VERIFIED,
    STAGE_VERIFIED_TO_DELIVERED,
    STAGE_SUBMITTED_TO_DELIVERED,
    STAGE_DELIVERED_TO_ACKNOWLEDGED,
)
# A recipient's first answer acknowledges receipt: arrived, refused or accepted.
ACKNOWLEDGING_CODES = frozenset({"01", "02", "03"})

# Prometheus series names (after the exporter's translation of the instruments below).
METRIC_NAMES = frozenset(
    {
        "rpc_server_duration_seconds",
        "messaging_process_duration_seconds",
        "messaging_publish_messages_total",
        "lienthong_event_age_seconds",
        "lienthong_pipeline_duration_seconds",
        "lienthong_consumer_lag",
        "lienthong_outbox_backlog",
        "lienthong_outbox_oldest_age_seconds",
        "lienthong_verdicts_total",
        "lienthong_documents_refused_total",
        "lienthong_delivery_statuses_total",
        "lienthong_acknowledgements_overdue",
        "lienthong_dead_letters_parked",
    }
)
# Counters that appear only once something has been counted (none in a healthy run).
SPARSE_METRIC_NAMES = frozenset(
    {"lienthong_consumer_dead_letters_total", "lienthong_consumer_foreign_records_total"}
)
# The gateway's own prometheus_client registry, served on its HTTP /metrics (lienthong_gateway.context).
GATEWAY_METRIC_NAMES = frozenset(
    {
        "lienthong_gateway_requests_total",
        "lienthong_gateway_request_seconds",
        "lienthong_documents_submitted_total",
        "lienthong_statuses_posted_total",
    }
)


def _seconds_since(ts: Any) -> float:
    return max(0.0, time.time() - float(ts.ToMicroseconds()) / 1e6)


def _at(ts: Any) -> float:
    return float(ts.ToMicroseconds()) / 1e6


@dataclass
class _Instruments:
    """Created lazily on first use, from whichever MeterProvider is installed by then."""

    rpc_duration: Any
    process_duration: Any
    published: Any
    event_age: Any
    pipeline: Any
    verdicts: Any
    refused: Any
    statuses: Any
    dead_letters: Any
    foreign_records: Any


_lock = threading.Lock()
_instruments: _Instruments | None = None
_lag: dict[tuple[str, str, int], int] = {}
_outboxes: list[tuple[str, sessionmaker[Session], Any]] = []
_overdue_source: list[Callable[[], Iterable[tuple[int, dict[str, str]]]]] = []


def instruments() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _create()
    return _instruments


def _create(meter: metrics.Meter | None = None) -> _Instruments:
    """Every instrument, on `meter` (the global provider's by default; tests pass their own)."""
    meter = meter or metrics.get_meter(METER_NAME)
    made = _Instruments(
        rpc_duration=meter.create_histogram(
            "rpc.server.duration",
            unit="s",
            description="gRPC calls served, by service, method and status",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        ),
        process_duration=meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Kafka events handled (transaction included), by topic, group and outcome",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        ),
        published=meter.create_counter(
            "messaging.publish.messages",
            unit="{message}",
            description="events published from the outbox and acknowledged by the broker",
        ),
        event_age=meter.create_histogram(
            "lienthong.event.age",
            unit="s",
            description="time from an event's occurred_at to its handling by a consumer",
            explicit_bucket_boundaries_advisory=PIPELINE_BUCKETS,
        ),
        pipeline=meter.create_histogram(
            "lienthong.pipeline.duration",
            unit="s",
            description="a document's time between two pipeline stages, from event occurred_at",
            explicit_bucket_boundaries_advisory=PIPELINE_BUCKETS,
        ),
        verdicts=meter.create_counter(
            "lienthong.verdicts",
            unit="{document}",
            description="signature verdicts issued, by ETSI EN 319 102-1 indication",
        ),
        refused=meter.create_counter(
            "lienthong.documents.refused",
            unit="{document}",
            description="documents refused by routing after verification",
        ),
        statuses=meter.create_counter(
            "lienthong.delivery.statuses",
            unit="{status}",
            description="delivery updates, by QCVN 102 status code (empty: delivered)",
        ),
        dead_letters=meter.create_counter(
            "lienthong.consumer.dead_letters",
            unit="{event}",
            description="events parked in a dead-letter table after failing every attempt",
        ),
        foreign_records=meter.create_counter(
            "lienthong.consumer.foreign_records",
            unit="{record}",
            description="records skipped because their producer header is not the topic's owner",
        ),
    )
    meter.create_observable_gauge(
        "lienthong.dead_letters.parked",
        callbacks=[_observe_parked],
        unit="{event}",
        description="events parked in a service's dead-letter table, waiting for a re-drive",
    )
    meter.create_observable_gauge(
        "lienthong.consumer.lag",
        callbacks=[_observe_lag],
        unit="{message}",
        description="messages behind the partition's end, per consumer group",
    )
    meter.create_observable_gauge(
        "lienthong.outbox.backlog",
        callbacks=[_observe_backlog],
        unit="{event}",
        description="events waiting in a service's outbox",
    )
    meter.create_observable_gauge(
        "lienthong.outbox.oldest_age",
        callbacks=[_observe_oldest],
        unit="s",
        description="age of the oldest event waiting in a service's outbox",
    )
    meter.create_observable_gauge(
        "lienthong.acknowledgements.overdue",
        callbacks=[_observe_overdue],
        unit="{delivery}",
        description="deliveries not acknowledged within the working day",
    )
    return made


# -- gRPC RED -----------------------------------------------------------------------------------


class GrpcServerMetrics(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Records rpc.server.duration for every call, unary and streaming alike."""

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        full = handler_call_details.method.lstrip("/")
        service, _, method = full.partition("/")
        if service.startswith("grpc."):
            return handler  # health checks and reflection are not the platform's operations
        base = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}

        def observe(started: float, context: Any, error: BaseException | None) -> None:
            code = _status_of(context, error)
            instruments().rpc_duration.record(
                time.perf_counter() - started, {**base, "rpc.grpc.status_code": code}
            )

        def wrap_unary(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
            def call(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = behaviour(request, context)
                except BaseException as error:
                    observe(started, context, error)
                    raise
                observe(started, context, None)
                return result

            return call

        def wrap_stream(
            behaviour: Callable[[Any, Any], Iterator[Any]],
        ) -> Callable[[Any, Any], Iterator[Any]]:
            def call(request: Any, context: Any) -> Iterator[Any]:
                started = time.perf_counter()
                try:
                    yield from behaviour(request, context)
                except BaseException as error:
                    observe(started, context, error)
                    raise
                observe(started, context, None)

            return call

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                wrap_unary(handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                wrap_unary(handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                wrap_stream(handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                wrap_stream(handler.stream_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler


def _status_of(context: Any, error: BaseException | None) -> str:
    code = None
    getter = getattr(context, "code", None)
    if callable(getter):
        try:
            code = getter()
        except Exception:  # noqa: BLE001 - older grpc contexts do not keep the code
            code = None
    if isinstance(code, grpc.StatusCode):
        return str(code.value[0])
    if isinstance(code, int):
        return str(code)
    return "2" if error is not None else "0"  # UNKNOWN for an unhandled exception, else OK


# -- Kafka: consumption, publication, lag -------------------------------------------------------


def observe_consumed(
    *, group: str, topic: str, event: events_pb2.Event, seconds: float, outcome: str
) -> None:
    """One event handled by a consumer: RED, freshness and, where both ends are seen, pipeline."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.consumer.group.name": group,
        "outcome": outcome,
    }
    instruments().process_duration.record(seconds, attributes)
    if outcome != "handled":
        return
    if event.HasField("occurred_at"):
        instruments().event_age.record(
            _seconds_since(event.occurred_at),
            {"messaging.destination.name": topic, "messaging.consumer.group.name": group},
        )
    PIPELINE.observe(event)


def observe_published(topic: str, payload: bytes) -> None:
    """One event acknowledged by the broker: counts by kind, verdicts, refusals and statuses."""
    try:
        event = events_pb2.Event.FromString(payload)
    except Exception:  # noqa: BLE001 - a metric must never break publishing
        return
    kind = event.WhichOneof("payload") or "unknown"
    made = instruments()
    made.published.add(
        1, {"messaging.system": "kafka", "messaging.destination.name": topic, "lienthong.event.kind": kind}
    )
    if kind == "verified":
        made.verdicts.add(
            1,
            {"indication": event.verified.indication, "sub_indication": event.verified.sub_indication},
        )
    elif kind == "refused":
        made.refused.add(1, {"indication": event.refused.indication})
    elif kind == "delivery_updated":
        made.statuses.add(
            1, {"status_code": event.delivery_updated.status_code, "state": event.delivery_updated.state}
        )


def count_dead_letter(*, group: str, topic: str) -> None:
    """A poison message parked in a service's dead_letters table (kafka.EventConsumer)."""
    instruments().dead_letters.add(
        1, {"messaging.consumer.group.name": group, "messaging.destination.name": topic}
    )


def count_foreign_record(*, group: str, topic: str, producer: str) -> None:
    """A record whose producer header is not its topic's owner, skipped (kafka.EventConsumer)."""
    instruments().foreign_records.add(
        1,
        {
            "messaging.consumer.group.name": group,
            "messaging.destination.name": topic,
            "lienthong.producer": producer,
        },
    )


def set_consumer_lag(*, group: str, topic: str, partition: int, lag: int) -> None:
    _lag[(group, topic, partition)] = max(0, lag)


def _observe_lag(_options: CallbackOptions) -> Iterable[Observation]:
    for (group, topic, partition), lag in list(_lag.items()):
        yield Observation(
            lag,
            {
                "messaging.consumer.group.name": group,
                "messaging.destination.name": topic,
                "messaging.destination.partition.id": str(partition),
            },
        )


def record_consumer_lag(consumer: Any, group: str) -> None:
    """Lag of every partition assigned to a kafka-python consumer (end offset minus position)."""
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=200)
        except TypeError:  # older kafka-python: no timeout argument
            position = consumer.position(tp)
        except Exception:  # position unknown right after a rebalance
            log.debug("position of %s unknown", tp, exc_info=True)
            continue
        if position is not None:
            set_consumer_lag(group=group, topic=tp.topic, partition=tp.partition, lag=end - position)


# -- outbox backlog -----------------------------------------------------------------------------


def watch_outbox(service: str, sessions: sessionmaker[Session], outbox: Any) -> None:
    """Report this service's outbox backlog and oldest waiting event on each scrape."""
    _outboxes.append((service, sessions, outbox))
    instruments()


def _outbox_stats() -> Iterator[tuple[str, int, float]]:
    for service, sessions, outbox in list(_outboxes):
        try:
            with sessions() as session:
                count, oldest = session.execute(
                    select(func.count(), func.min(outbox.table.c.created_at)).select_from(outbox.table)
                ).one()
        except Exception:  # an unreachable database reports nothing
            log.debug("outbox backlog query failed", exc_info=True)
            continue
        age = 0.0
        if oldest is not None:
            oldest_at = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            age = max(0.0, (datetime.now(UTC) - oldest_at).total_seconds())
        yield service, int(count), age


def _observe_parked(_options: CallbackOptions) -> Iterable[Observation]:
    for service, sessions, outbox in list(_outboxes):
        table = getattr(outbox, "dead_letters", None)
        if table is None:
            continue
        try:
            with sessions() as session:
                count = session.execute(
                    select(func.count()).select_from(table).where(table.c.state == "parked")
                ).scalar_one()
        except Exception:  # an unreachable database (or one not migrated yet) reports nothing
            log.debug("dead-letter count failed", exc_info=True)
            continue
        yield Observation(int(count), {"service": service})


def _observe_backlog(_options: CallbackOptions) -> Iterable[Observation]:
    for service, count, _age in _outbox_stats():
        yield Observation(count, {"service": service})


def _observe_oldest(_options: CallbackOptions) -> Iterable[Observation]:
    for service, _count, age in _outbox_stats():
        yield Observation(age, {"service": service})


# -- overdue acknowledgements (the routing service provides the count) --------------------------


def set_overdue_acknowledgements_source(source: Callable[[], Iterable[tuple[int, dict[str, str]]]]) -> None:
    """Install what counts overdue acknowledgements: (count, attributes) pairs, read on each scrape.

    Routing owns deliveries and their deadlines, so it registers a source, e.g. one row per
    recipient province: `(12, {"recipient_province": "H49"})`.
    """
    _overdue_source[:] = [source]
    instruments()


def _observe_overdue(_options: CallbackOptions) -> Iterable[Observation]:
    for source in list(_overdue_source):
        try:
            for count, attributes in source():
                yield Observation(count, attributes)
        except Exception:  # a failing source reports nothing this scrape
            log.debug("overdue acknowledgements source failed", exc_info=True)


# -- pipeline latency ---------------------------------------------------------------------------


@dataclass
class _Journey:
    submitted: float | None = None
    verified: float | None = None
    delivered: dict[str, float] = field(default_factory=dict)
    acknowledged: set[str] = field(default_factory=set)


class PipelineClock:
    """Pairs a document's events by id (bounded memory) and observes the time between stages.

    Times come from each event's `occurred_at`, so the figure is the platform's, not the
    consumer's; a process only observes the stages whose both ends it consumes.
    """

    def __init__(self, capacity: int = 100_000, record: Callable[[str, float], None] | None = None) -> None:
        self.capacity = capacity
        self._journeys: OrderedDict[str, _Journey] = OrderedDict()
        self._lock = threading.Lock()
        self._record = record or (
            lambda stage, seconds: instruments().pipeline.record(seconds, {"stage": stage})
        )

    def _journey(self, document_id: str) -> _Journey:
        journey = self._journeys.get(document_id)
        if journey is None:
            journey = self._journeys[document_id] = _Journey()
            while len(self._journeys) > self.capacity:
                self._journeys.popitem(last=False)
        else:
            self._journeys.move_to_end(document_id)
        return journey

    def observe(self, event: events_pb2.Event) -> None:
        kind = event.WhichOneof("payload")
        if not event.document_id or kind not in ("submitted", "verified", "delivery_updated", "refused"):
            return
        at = _at(event.occurred_at)
        observed: list[tuple[str, float]] = []
        with self._lock:
            journey = self._journey(event.document_id)
            if kind == "submitted":
                journey.submitted = at
            elif kind == "verified":
                journey.verified = at
                if journey.submitted is not None:
                    observed.append((STAGE_SUBMITTED_TO_VERIFIED, at - journey.submitted))
            elif kind == "refused":
                self._journeys.pop(event.document_id, None)
            else:
                update = event.delivery_updated
                recipient = update.recipient_code
                if update.state == "delivered" and not update.previous_state:
                    if recipient not in journey.delivered:
                        journey.delivered[recipient] = at
                        if journey.verified is not None:
                            observed.append((STAGE_VERIFIED_TO_DELIVERED, at - journey.verified))
                        if journey.submitted is not None:
                            observed.append((STAGE_SUBMITTED_TO_DELIVERED, at - journey.submitted))
                elif update.status_code in ACKNOWLEDGING_CODES and recipient not in journey.acknowledged:
                    journey.acknowledged.add(recipient)
                    delivered = journey.delivered.get(recipient)
                    if delivered is not None:
                        observed.append((STAGE_DELIVERED_TO_ACKNOWLEDGED, at - delivered))
        for stage, seconds in observed:
            self._record(stage, max(0.0, seconds))


PIPELINE = PipelineClock()


# -- serving ------------------------------------------------------------------------------------


def serve_metrics(settings: MetricsSettings) -> int | None:
    """Serve prometheus_client's default registry on the metrics port; returns the port or None."""
    if not settings.port:
        return None
    from prometheus_client import start_http_server

    instruments()
    start_http_server(settings.port, addr=settings.host)
    log.info("metrics on http://%s:%d/metrics", settings.host, settings.port)
    return settings.port
