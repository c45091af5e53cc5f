"""gRPC servers and client channels, shared by every service.

A server carries the standard grpc.health.v1 service (SERVING only while its own database
and Kafka are reachable, NOT_SERVING while draining), reflection, and OpenTelemetry
instrumentation. Clients get instrumented channels; callers pass the deadline per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

T = TypeVar("T")

_instrumented = False


def _instrument() -> None:
    global _instrumented
    if _instrumented:
        return
    _instrumented = True
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer

    GrpcInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcInstrumentorClient().instrument()  # type: ignore[no-untyped-call]


def make_server(max_workers: int) -> grpc.Server:
    from lienthong_common.metrics import GrpcServerMetrics

    _instrument()
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[GrpcServerMetrics()],
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 8 * 1024 * 1024),
        ],
    )


def add_health_and_reflection(server: grpc.Server, service_names: list[str]) -> health.HealthServicer:
    servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    for name in ["", *service_names]:
        servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    return servicer


def channel(address: str) -> grpc.Channel:
    """An instrumented insecure channel to a peer (mTLS is the service mesh's job in cluster)."""
    _instrument()
    return grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 8 * 1024 * 1024),
            ("grpc.enable_retries", 1),
            # A restarted peer is found again within a second, not after gRPC's default
            # exponential back-off of up to two minutes.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


def health_status(address: str, timeout: float = 2.0) -> str:
    """SERVING / NOT_SERVING / UNREACHABLE for the peer's overall health."""
    try:
        with grpc.insecure_channel(address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError:
        return "UNREACHABLE"


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


class DomainError(Exception):
    """An error with a gRPC status code and a message meant for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(message: str) -> DomainError:
    return DomainError(grpc.StatusCode.NOT_FOUND, message)


def invalid(message: str) -> DomainError:
    return DomainError(grpc.StatusCode.INVALID_ARGUMENT, message)


def conflict(message: str) -> DomainError:
    return DomainError(grpc.StatusCode.FAILED_PRECONDITION, message)


def forbidden(message: str) -> DomainError:
    return DomainError(grpc.StatusCode.PERMISSION_DENIED, message)


def translate_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Decorator for servicer methods: DomainError becomes a gRPC status with its message."""
    import functools

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except DomainError as error:
            context.abort(error.code, error.message)
            raise  # unreachable: abort raises

    return wrapper
