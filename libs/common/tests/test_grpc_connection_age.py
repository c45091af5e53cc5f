"""LIENTHONG_GRPC__MAX_CONNECTION_AGE_SECONDS: servers close client connections gently after an
age, so clients reconnect (and reach pods or workers added since); no call is lost to it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import grpc
import pytest
from pydantic import ValidationError

from lienthong_common.grpcutil import channel, make_server
from lienthong_common.settings import GrpcSettings

WHO = "/lienthong.test.Age/Who"
SLOW = "/lienthong.test.Age/Slow"


def _who(_request: bytes, context: grpc.ServicerContext) -> bytes:
    return context.peer().encode()  # the client's ip:port: one per connection


def _slow(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    received = b"".join(requests)
    time.sleep(1.5)  # well past the connection's age
    return received


@contextlib.contextmanager
def _serving(age: float) -> Iterator[str]:
    """A platform server (make_server) with the test methods, for the duration; its address."""
    server = make_server(4, max_connection_age_seconds=age)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "lienthong.test.Age",
                {
                    "Who": grpc.unary_unary_rpc_method_handler(_who),
                    "Slow": grpc.stream_unary_rpc_method_handler(_slow),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def _peers_over(address: str, seconds: float) -> tuple[set[str], int]:
    """Call Who every 20 ms for `seconds` on one channel: the peers seen and the calls made
    (every one of them must succeed; an error fails the test)."""
    with channel(address, own_connection=True, tls=None) as ch:
        who = ch.unary_unary(WHO, None, None)
        peers: set[str] = set()
        calls = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            peers.add(who(b"", timeout=5).decode())
            calls += 1
            time.sleep(0.02)
    return peers, calls


def test_connections_are_remade_after_their_age_and_no_call_fails() -> None:
    with _serving(age=0.4) as address:
        peers, calls = _peers_over(address, 2.5)
    assert calls > 50
    # ~0.4 s per connection (+-10 % jitter) over 2.5 s: several connections, each a new port.
    assert len(peers) >= 3, peers


def test_without_an_age_the_connection_stays() -> None:
    with _serving(age=0) as address:
        peers, _ = _peers_over(address, 1.5)
    assert len(peers) == 1, peers


def test_a_call_in_flight_when_the_age_passes_finishes() -> None:
    with _serving(age=0.3) as address, channel(address, own_connection=True, tls=None) as ch:
        slow = ch.stream_unary(SLOW, None, None)
        started = time.monotonic()
        assert slow(iter([b"package ", b"bytes"]), timeout=10) == b"package bytes"
        assert time.monotonic() - started >= 1.5


def test_the_setting_refuses_a_negative_age() -> None:
    assert GrpcSettings().max_connection_age_seconds == 300.0
    with pytest.raises(ValidationError, match="LIENTHONG_GRPC__MAX_CONNECTION_AGE_SECONDS must be 0 or more"):
        GrpcSettings(max_connection_age_seconds=-1)
