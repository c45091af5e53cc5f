"""gRPC servers and client channels, shared by every service.

A server carries the standard grpc.health.v1 service (SERVING only while its own database
and Kafka are reachable, NOT_SERVING while draining), reflection, and OpenTelemetry
instrumentation. Clients get instrumented channels; callers pass the deadline per call.
Channels are mTLS (lienthong_common.mtls): every caller passes its ClientTls, or None for the
explicit plaintext mode (loopback only), so no call site can forget it.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

# The errors are the domain's (lienthong_common.errors); re-exported for callers not yet moved.
from lienthong_common.errors import DomainError as DomainError
from lienthong_common.errors import ErrorKind
from lienthong_common.errors import conflict as conflict
from lienthong_common.errors import forbidden as forbidden
from lienthong_common.errors import invalid as invalid
from lienthong_common.errors import not_found as not_found
from lienthong_common.mtls import ClientTls, identity_name

T = TypeVar("T")

if TYPE_CHECKING:  # generic in grpc-stubs only
    _UnaryUnary = grpc.UnaryUnaryMultiCallable[Any, Any]
    _UnaryStream = grpc.UnaryStreamMultiCallable[Any, Any]
    _StreamUnary = grpc.StreamUnaryMultiCallable[Any, Any]
    _StreamStream = grpc.StreamStreamMultiCallable[Any, Any]
else:
    _UnaryUnary = grpc.UnaryUnaryMultiCallable
    _UnaryStream = grpc.UnaryStreamMultiCallable
    _StreamUnary = grpc.StreamUnaryMultiCallable
    _StreamStream = grpc.StreamStreamMultiCallable

_instrumented = False


def _instrument() -> None:
    global _instrumented
    if _instrumented:
        return
    _instrumented = True
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer

    GrpcInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcInstrumentorClient().instrument()  # type: ignore[no-untyped-call]


def make_server(
    max_workers: int, *, max_connection_age_seconds: float = 0.0, authorise_as: str | None = None
) -> grpc.Server:
    """A gRPC server with the platform's interceptors and limits. With a connection age, each
    client connection is closed gently (GOAWAY; calls in flight finish, with no grace limit)
    after about that long, so clients reconnect and spread over pods or workers added since.
    With `authorise_as` (the service's name; mTLS servers) every call passes the per-method
    authorisation table (lienthong_common.authz) first."""
    from lienthong_common.authz import AuthorisationInterceptor
    from lienthong_common.metrics import GrpcServerMetrics

    _instrument()
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        ("grpc.max_send_message_length", 8 * 1024 * 1024),
        # Worker processes of one service bind the same port and the kernel spreads
        # connections over them (LIENTHONG_GRPC__WORKERS). gRPC's Linux default, made
        # explicit because the workers depend on it.
        ("grpc.so_reuseport", 1),
    ]
    if max_connection_age_seconds > 0:
        options.append(("grpc.max_connection_age_ms", max(1, round(max_connection_age_seconds * 1000))))
    interceptors: list[Any] = [GrpcServerMetrics()]
    if authorise_as is not None:
        interceptors.insert(0, AuthorisationInterceptor(authorise_as))
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=interceptors,
        options=options,
    )


def make_health_server(servicer: health.HealthServicer) -> grpc.Server:
    """A small plaintext server carrying only grpc.health.v1 (the same servicer, so the same
    statuses): for kubelet's gRPC probes, which cannot present a client certificate."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.so_reuseport", 1)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return server


def add_health_and_reflection(server: grpc.Server, service_names: list[str]) -> health.HealthServicer:
    servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    for name in ["", *service_names]:
        servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    return servicer


_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
    ("grpc.enable_retries", 1),
    # A restarted peer is found again within a second, not after gRPC's default
    # exponential back-off of up to two minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def channel(
    address: str, *, tls: ClientTls | None, peer: str = "", own_connection: bool = False
) -> grpc.Channel:
    """An instrumented channel to the service `peer` at `address`: mTLS presenting `tls`'s
    certificate and accepting only a server whose certificate names `peer`
    (`<peer>.lienthong.internal`), whatever the address; plaintext when `tls` is None.

    Channels to one address share one TCP connection by default (gRPC's global subchannel
    pool); with own_connection the channel opens its own.
    """
    _instrument()
    options = list(_CHANNEL_OPTIONS)
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    if tls is None:
        return grpc.insecure_channel(address, options=options)
    if not peer:
        raise ValueError(f"an mTLS channel to {address} needs the peer service's name to verify it")
    options.append(("grpc.ssl_target_name_override", identity_name(peer)))
    return grpc.secure_channel(address, tls.credentials, options=options)


def channel_pool(address: str, connections: int, *, tls: ClientTls | None, peer: str = "") -> grpc.Channel:
    """A channel to a peer over `connections` TCP connections, used round-robin per call.

    One HTTP/2 connection carries every call to the one process (and, behind a Kubernetes
    ClusterIP, the one pod) it reached; several let the kernel's SO_REUSEPORT spreading and
    kube-proxy's per-connection balancing share the calls out. connections == 1 is exactly
    `channel(address)`.
    """
    if connections < 1:
        raise ValueError(f"a channel pool needs at least one connection, not {connections}")
    if connections == 1:
        return channel(address, tls=tls, peer=peer)
    return ChannelPool(
        [channel(address, tls=tls, peer=peer, own_connection=True) for _ in range(connections)]
    )


class Balancer:
    """Which of `count` connections to one service the next call takes (thread-safe).

    Each connection is scored by its peak-EWMA latency x (calls in flight + 1). A balanced
    pick takes the next connection in turn unless it scores worse than `TOLERANCE` times the
    best, in which case the next one in turn that does not. So connections that look alike
    share calls in turn (at low load every pod and worker gets its share), and connections that
    reached a busier process (slower answers, more calls waiting) are passed over until they
    catch up. A connection's process is fixed when it connects (the kernel's SO_REUSEPORT hash,
    or kube-proxy), so an unlucky spread can put most connections on one process: every
    connection is looked at, not two at random ("power of two choices" still sent 72 % of the
    work to a process holding most connections in a bench run), which costs a few
    comparisons per call. A call failing UNAVAILABLE or DEADLINE_EXCEEDED counts as a slow
    one, so a broken connection is avoided. A latency fades while its connection gets no calls
    (halving every `HALF_LIFE_SECONDS`, as Finagle's peak EWMA decays), so an avoided
    connection is tried again after a while instead of never: the peer may have come back, or
    the connection been remade to another pod.
    """

    DECAY = 0.8  # weight of the past in the latency average
    FAILURE_SECONDS = 1.0  # what a failed call counts as, at least
    TOLERANCE = 1.5  # scores within this factor of the best count as alike
    HALF_LIFE_SECONDS = 10.0  # how fast the latency of an unused connection fades

    def __init__(self, count: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if count < 1:
            raise ValueError(f"a balancer needs at least one connection, not {count}")
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0
        self._latency = [0.0] * count
        self._stamp = [clock()] * count  # when each latency was last updated
        self._in_flight = [0] * count

    def _faded(self, index: int, now: float) -> float:
        halvings = (now - self._stamp[index]) / self.HALF_LIFE_SECONDS
        return self._latency[index] * math.pow(0.5, halvings)

    def pick(self, *, balanced: bool = False) -> int:
        """The next connection in turn; with `balanced` (a call that will be timed), the next
        in turn whose score is within `TOLERANCE` of the best."""
        with self._lock:
            count = len(self._latency)
            first = self._next
            index = first
            if balanced and count > 1:
                now = self._clock()
                scores = [self._faded(i, now) * (self._in_flight[i] + 1) for i in range(count)]
                good_enough = min(scores) * self.TOLERANCE
                index = next(i for i in (*range(first, count), *range(first)) if scores[i] <= good_enough)
            self._next = (index + 1) % count
        return index

    @contextlib.contextmanager
    def timed(self, index: int) -> Iterator[None]:
        """Count a call on connection `index` as in flight while the block runs (sync or
        async), and time it into its average. A call failing UNAVAILABLE or DEADLINE_EXCEEDED
        (the connection's fault, not the request's) counts as slow, so it is avoided."""
        self.started(index)
        began = time.perf_counter()
        failed = False
        try:
            yield
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            failed = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            raise
        finally:
            self.finished(index, time.perf_counter() - began, failed=failed)

    def started(self, index: int) -> None:
        """A call on connection `index` began."""
        with self._lock:
            self._in_flight[index] += 1

    def finished(self, index: int, seconds: float, *, failed: bool = False) -> None:
        """A call on connection `index` ended after `seconds` (a failed one counts as slow)."""
        took = max(seconds, self.FAILURE_SECONDS) if failed else seconds
        with self._lock:
            now = self._clock()
            self._in_flight[index] -= 1
            past = self._faded(index, now)
            # Peak-sensitive: a slower call is taken at once, a faster one is averaged in.
            self._latency[index] = took if took > past else past * self.DECAY + took * (1 - self.DECAY)
            self._stamp[index] = now


class ChannelPool(grpc.Channel):
    """Channels to one address behind one Channel: each call goes to one of them.

    Stubs create their multi-callables once, so the pool hands out multi-callables that pick a
    channel per call. Each member channel is instrumented on its own (the OpenTelemetry client
    interceptor wraps it), so traces are the same as through a single channel.

    Which channel a call takes is the `Balancer`'s choice: in turn while the channels look
    alike, away from a connection that answers slower or has more calls waiting once calls
    have been timed. Calls whose end the pool cannot see (futures, response streams) simply
    take the next in turn.
    """

    def __init__(self, channels: list[grpc.Channel]) -> None:
        if not channels:
            raise ValueError("a channel pool needs at least one channel")
        self.channels = channels
        self.balancer = Balancer(len(channels))

    def pick(self, *, balanced: bool = False) -> int:
        """The index of the channel the next call uses (thread-safe); see `Balancer.pick`."""
        return self.balancer.pick(balanced=balanced)

    def timed(self, index: int) -> contextlib.AbstractContextManager[None]:
        """Count a call on channel `index` as in flight, and time it; see `Balancer.timed`."""
        return self.balancer.timed(index)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> _UnaryUnary:
        return _PooledUnaryResponse(self, [ch.unary_unary(method, *args, **kwargs) for ch in self.channels])

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> _UnaryStream:
        return _PooledStreamResponse(self, [ch.unary_stream(method, *args, **kwargs) for ch in self.channels])

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> _StreamUnary:
        return _PooledUnaryResponse(self, [ch.stream_unary(method, *args, **kwargs) for ch in self.channels])

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> _StreamStream:
        calls = [ch.stream_stream(method, *args, **kwargs) for ch in self.channels]
        return _PooledStreamResponse(self, calls)

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        # Connectivity is per connection; the first stands for the pool (channel_ready_future).
        self.channels[0].subscribe(callback, try_to_connect=try_to_connect)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        self.channels[0].unsubscribe(callback)

    def close(self) -> None:
        for ch in self.channels:
            ch.close()

    def __enter__(self) -> ChannelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PooledUnaryResponse(_UnaryUnary, _StreamUnary):
    """A unary-response method (unary or client-streaming request) over the pool: the call's
    end is seen, so it is balanced and timed."""

    def __init__(self, pool: ChannelPool, calls: list[Any]) -> None:
        self._pool = pool
        self._calls = calls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        index = self._pool.pick(balanced=True)
        with self._pool.timed(index):
            return self._calls[index](*args, **kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        index = self._pool.pick(balanced=True)
        with self._pool.timed(index):
            return self._calls[index].with_call(*args, **kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._calls[self._pool.pick()].future(*args, **kwargs)


class _PooledStreamResponse(_UnaryStream, _StreamStream):
    """A server-streaming method over the pool: the next connection in turn."""

    def __init__(self, pool: ChannelPool, calls: list[Any]) -> None:
        self._pool = pool
        self._calls = calls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._calls[self._pool.pick()](*args, **kwargs)


def health_status(address: str, *, tls: ClientTls | None, peer: str = "", timeout: float = 2.0) -> str:
    """SERVING / NOT_SERVING / UNREACHABLE for the overall health of the service `peer`."""
    try:
        with channel(address, tls=tls, peer=peer, own_connection=True) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError:
        return "UNREACHABLE"


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


# The one mapping from the domain's error kinds to gRPC status codes.
GRPC_STATUS: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorKind.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorKind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.DAMAGED: grpc.StatusCode.DATA_LOSS,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.TIMED_OUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}


def abort(context: grpc.ServicerContext, error: DomainError) -> NoReturn:
    """End the call with the gRPC status of the error's kind and its message."""
    context.abort(GRPC_STATUS[error.kind], error.message)
    raise error  # unreachable: abort raises


def translate_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Decorator for servicer methods: DomainError becomes a gRPC status with its message."""
    import functools

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except DomainError as error:
            abort(context, error)

    return wrapper
