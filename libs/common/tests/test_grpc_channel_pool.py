"""channel_pool: K channels to one address, each its own TCP connection, used round-robin per call."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest

from lienthong_common.grpcutil import Balancer, ChannelPool, channel, channel_pool, make_server
from lienthong_common.settings import GrpcSettings

PEER = "/lienthong.test.Peer/Who"
PEER_STREAM_IN = "/lienthong.test.Peer/WhoAfterStream"
PEER_STREAM_OUT = "/lienthong.test.Peer/WhoStreamed"
PEER_BIDI = "/lienthong.test.Peer/WhoBidi"


def _who(_request: bytes, context: grpc.ServicerContext) -> bytes:
    return context.peer().encode()  # the client's ip:port as the server sees it


def _who_after_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    for _ in requests:
        pass
    return context.peer().encode()


def _who_streamed(_request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield context.peer().encode()


def _who_bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for _ in requests:
        yield context.peer().encode()


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server = make_server(4)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "lienthong.test.Peer",
                {
                    "Who": grpc.unary_unary_rpc_method_handler(_who),
                    "WhoAfterStream": grpc.stream_unary_rpc_method_handler(_who_after_stream),
                    "WhoStreamed": grpc.unary_stream_rpc_method_handler(_who_streamed),
                    "WhoBidi": grpc.stream_stream_rpc_method_handler(_who_bidi),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_one_connection_is_todays_single_channel(address: str) -> None:
    with channel_pool(address, 1, tls=None) as ch:
        assert not isinstance(ch, ChannelPool)
        who = ch.unary_unary(PEER)
        assert len({who(b"", timeout=5) for _ in range(6)}) == 1


def test_calls_go_round_robin_over_distinct_connections(address: str) -> None:
    pool = channel_pool(address, 3, tls=None)
    assert isinstance(pool, ChannelPool)
    try:
        # As generated stubs build their multi-callables: once, with _registered_method.
        who = pool.unary_unary(PEER, None, None, _registered_method=True)
        peers = [who(b"", timeout=5) for _ in range(9)]
        # Three client ports, i.e. three TCP connections; each is tried before any is reused
        # (after that the faster ones are preferred; see test_slower_connections_get_fewer_calls).
        assert len(set(peers[:3])) == 3
        assert set(peers) == set(peers[:3])
        # with_call and future pick a channel per call too (futures in turn).
        more = [who.with_call(b"", timeout=5)[0] for _ in range(3)]
        futures = [who.future(b"", timeout=5).result() for _ in range(3)]
        assert set(more) <= set(peers[:3])
        assert set(futures) == set(peers[:3])
    finally:
        pool.close()


def test_streaming_methods_spread_too(address: str) -> None:
    with channel_pool(address, 2, tls=None) as pool:
        after_stream = pool.stream_unary(PEER_STREAM_IN)
        streamed = pool.unary_stream(PEER_STREAM_OUT)
        bidi = pool.stream_stream(PEER_BIDI)
        both = {after_stream(iter([b"a", b"b"]), timeout=5) for _ in range(2)}
        assert len(both) == 2
        assert len({next(iter(streamed(b"", timeout=5))) for _ in range(2)}) == 2
        assert len({next(iter(bidi(iter([b"x"]), timeout=5))) for _ in range(2)}) == 2
        assert {after_stream.with_call(iter([b"a"]), timeout=5)[0] for _ in range(4)} <= both


def test_channels_without_own_connection_share_one(address: str) -> None:
    # What the pool works around: gRPC's global subchannel pool reuses one connection.
    first, second = channel(address, tls=None), channel(address, tls=None)
    try:
        assert first.unary_unary(PEER)(b"", timeout=5) == second.unary_unary(PEER)(b"", timeout=5)
    finally:
        first.close()
        second.close()


def test_picks_are_even_under_threads() -> None:
    pool = ChannelPool([grpc.insecure_channel("127.0.0.1:1") for _ in range(4)])
    counts: Counter[int] = Counter()
    lock = threading.Lock()

    def pick_many() -> None:
        local = Counter(pool.pick() for _ in range(1000))
        with lock:
            counts.update(local)

    threads = [threading.Thread(target=pick_many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.close()
    assert counts == {0: 2000, 1: 2000, 2: 2000, 3: 2000}


def test_pool_refuses_no_connections() -> None:
    with pytest.raises(ValueError, match="at least one"):
        channel_pool("127.0.0.1:1", 0, tls=None)


@pytest.mark.parametrize("field", ["workers", "client_connections"])
@pytest.mark.parametrize("value", [0, -2])
def test_grpc_counts_must_be_at_least_one(field: str, value: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from lienthong_common.settings import Settings

    monkeypatch.setenv(f"LIENTHONG_GRPC__{field.upper()}", str(value))
    with pytest.raises(ValidationError, match=f"LIENTHONG_GRPC__{field.upper()} must be at least 1"):
        Settings()


def test_grpc_counts_default_to_one_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from lienthong_common.settings import Settings

    assert GrpcSettings().workers == 1
    assert GrpcSettings().client_connections == 1
    monkeypatch.setenv("LIENTHONG_GRPC__WORKERS", "3")
    monkeypatch.setenv("LIENTHONG_GRPC__CLIENT_CONNECTIONS", "4")
    settings = Settings()
    assert (settings.grpc.workers, settings.grpc.client_connections) == (3, 4)


def _balancer(latencies_ms: list[float]) -> Balancer:
    """A balancer whose connections have each answered one call in the given time."""
    balancer = Balancer(len(latencies_ms))
    for index, ms in enumerate(latencies_ms):
        balancer.started(index)
        balancer.finished(index, ms / 1000)
    return balancer


def test_slower_connections_get_no_calls_while_faster_ones_keep_up() -> None:
    # Channel 0's server process is busy (its calls took 50 ms), the others' about 1 ms.
    balancer = _balancer([50, 1.0, 1.2, 1.1])
    picks = Counter(balancer.pick(balanced=True) for _ in range(300))
    assert picks == {1: 100, 2: 100, 3: 100}  # the alike ones in turn, the slow one passed over
    # Unbalanced picks (untimed calls) stay in turn.
    assert Counter(balancer.pick() for _ in range(400)) == {0: 100, 1: 100, 2: 100, 3: 100}


def test_connections_that_look_alike_share_calls_in_turn() -> None:
    # At low load latencies differ a little from connection to connection: every one (every
    # pod or worker behind them) still gets its share, not just the fastest.
    balancer = _balancer([1.0, 1.3, 1.1, 1.4])
    assert Counter(balancer.pick(balanced=True) for _ in range(400)) == {0: 100, 1: 100, 2: 100, 3: 100}


def test_most_connections_on_a_busy_process_still_get_less_of_the_work() -> None:
    # 12 of 16 connections reached a busy worker (8 ms answers), 4 a free one (2 ms). Two
    # choices at random would mostly pick among the busy worker's; every connection is seen.
    balancer = _balancer([8.0] * 12 + [2.0] * 4)
    picks = Counter(balancer.pick(balanced=True) for _ in range(400))
    assert set(picks) == {12, 13, 14, 15}


def test_an_avoided_connection_is_tried_again_once_its_latency_fades() -> None:
    now = [0.0]
    balancer = Balancer(2, clock=lambda: now[0])

    def call(index: int, seconds: float, *, failed: bool = False) -> None:
        balancer.started(index)
        balancer.finished(index, seconds, failed=failed)

    call(0, 0.01, failed=True)  # counts as 1 s
    call(1, 0.01)
    assert {balancer.pick(balanced=True) for _ in range(10)} == {1}
    now[0] = 30.0  # channel 0 faded to 1/8 s; channel 1 still answering in 10 ms
    call(1, 0.01)
    assert {balancer.pick(balanced=True) for _ in range(10)} == {1}
    now[0] = 70.0  # seven half-lives: channel 0 at ~8 ms, alike the busy one: tried again
    call(1, 0.01)
    assert {balancer.pick(balanced=True) for _ in range(10)} == {0, 1}


def test_calls_in_flight_count_against_a_connection() -> None:
    pool = ChannelPool([grpc.insecure_channel("127.0.0.1:1") for _ in range(2)])
    try:
        for index in (0, 1):
            pool.balancer.started(index)
            pool.balancer.finished(index, 0.002)
        with pool.timed(0), pool.timed(0), pool.timed(0):
            # Equal latencies, but three calls are waiting on channel 0.
            assert {pool.pick(balanced=True) for _ in range(10)} == {1}
    finally:
        pool.close()


def test_a_failing_connection_is_avoided() -> None:
    pool = ChannelPool([grpc.insecure_channel("127.0.0.1:1") for _ in range(2)])
    try:
        with pool.timed(1):
            time.sleep(0.002)
        with pytest.raises(grpc.RpcError), pool.timed(0):
            pool.channels[0].unary_unary("/x.Y/Z")(b"", timeout=2)  # nothing listens: UNAVAILABLE
        assert {pool.pick(balanced=True) for _ in range(10)} == {1}
    finally:
        pool.close()
