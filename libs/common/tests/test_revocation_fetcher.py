"""CRL/OCSP URLs (chosen by whoever issued a certificate) are fetched through the outbound checks.

Internal addresses are refused before any connection, redirects are not followed, responses
are bounded in size; an operator's allow-list lets loopback through (the tests' CRL server).
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from lienthong_common.outbound import OutboundPolicy, OutboundRefused
from lienthong_common.pades.revocation import RevocationFetcher, RevocationFetchError

CRL = b"0\x82 pretend this is a CRL"
LOOPBACK = OutboundPolicy.from_cidrs(["127.0.0.0/8"])


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        if self.path == "/issuing.crl":
            self._reply(200, CRL)
        elif self.path == "/moved.crl":
            self.send_response(302)
            self.send_header("Location", "/issuing.crl")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/huge.crl":
            self._reply(200, b"x" * 5000)
        elif self.path == "/slow.crl":
            self._drip(20, pause=0.5)
        else:
            self._reply(404, b"")

    def do_POST(self) -> None:
        request = self.rfile.read(int(self.headers["Content-Length"]))
        self._reply(200, self.headers["Content-Type"].encode() + b"|" + request)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/pkix-crl")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, size: int, *, pause: float) -> None:
        """A byte at a time: every read is quick, the whole body is not."""
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        try:
            for _ in range(size):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(pause)
        except OSError:
            pass  # the client gave up, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[http.server.HTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(server: http.server.HTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_an_allow_listed_loopback_crl_is_fetched(server: http.server.HTTPServer) -> None:
    fetched = RevocationFetcher(LOOPBACK, timeout=5.0).fetch(_url(server, "/issuing.crl"), accept="x")
    assert fetched == CRL


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:{port}/issuing.crl", "loopback"),
        ("http://localhost:{port}/issuing.crl", "loopback"),
        ("http://2130706433:{port}/issuing.crl", "loopback"),
        ("http://[::1]:{port}/issuing.crl", "loopback"),
        ("http://10.1.2.3/issuing.crl", "private"),
        ("http://192.168.0.10/ca.crl", "private"),
        ("http://100.64.0.1/ca.crl", "CGNAT"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://[::ffff:10.0.0.1]/ca.crl", "private"),
    ],
)
def test_internal_crl_urls_are_refused_before_any_connection(
    server: http.server.HTTPServer, url: str, kind: str
) -> None:
    before = len(server.paths)  # type: ignore[attr-defined]
    fetcher = RevocationFetcher(OutboundPolicy(), timeout=2.0)
    with pytest.raises(OutboundRefused) as refused:
        fetcher.fetch(url.format(port=server.server_address[1]), accept="application/pkix-crl")
    assert kind in refused.value.reason
    assert len(server.paths) == before  # type: ignore[attr-defined]


def test_the_allow_list_never_opens_the_metadata_service() -> None:
    everything = OutboundPolicy.from_cidrs(["0.0.0.0/0"])
    with pytest.raises(OutboundRefused, match="metadata"):
        RevocationFetcher(everything, timeout=2.0).fetch("http://169.254.169.254/ca.crl", accept="x")


def test_a_redirect_is_not_followed(server: http.server.HTTPServer) -> None:
    before = list(server.paths)  # type: ignore[attr-defined]
    with pytest.raises(RevocationFetchError, match=r"HTTP 302 \(redirects are not followed\)"):
        RevocationFetcher(LOOPBACK, timeout=5.0).fetch(_url(server, "/moved.crl"), accept="x")
    assert server.paths[len(before) :] == ["/moved.crl"]  # type: ignore[attr-defined]


def test_a_response_over_the_size_bound_is_refused(server: http.server.HTTPServer) -> None:
    fetcher = RevocationFetcher(LOOPBACK, timeout=5.0, max_bytes=4096)
    with pytest.raises(RevocationFetchError, match="larger than 4096 bytes"):
        fetcher.fetch(_url(server, "/huge.crl"), accept="x")


def test_a_non_http_scheme_is_refused() -> None:
    with pytest.raises(OutboundRefused, match="absolute http"):
        RevocationFetcher(LOOPBACK, timeout=2.0).fetch(
            "ldap://127.0.0.1/cn=CA?certificateRevocationList", accept="x"
        )


def test_a_body_dripped_slower_than_the_timeout_is_given_up(server: http.server.HTTPServer) -> None:
    """20 bytes at one per 0.5 s take 10 s; the fetch gives up within about its 1 s timeout
    (each read, and the whole body, are bounded), whichever bound trips first."""
    fetcher = RevocationFetcher(LOOPBACK, timeout=1.0)
    with pytest.raises((RevocationFetchError, httpx.TimeoutException)):
        fetcher.fetch(_url(server, "/slow.crl"), accept="x")


def test_an_ocsp_request_is_posted_to_an_allow_listed_responder(server: http.server.HTTPServer) -> None:
    fetcher = RevocationFetcher(LOOPBACK, timeout=5.0)
    answer = fetcher.fetch(_url(server, "/ocsp"), accept="application/ocsp-response", body=b"0\x03req")
    assert answer == b"application/ocsp-request|0\x03req"
