"""`lienthong-gateway serve`: the HTTP API, as the container and the local stack run it."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from lienthong_common.settings import load_settings
from lienthong_common.telemetry import setup_telemetry

log = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(prog="lienthong-gateway")
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = load_settings()
    setup_telemetry("gateway")
    if args.command == "migrate":
        log.info("gateway owns no database; nothing to migrate")
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    from lienthong_gateway.app import create_app
    from lienthong_gateway.auth import PlaceholderSecretError, refuse_placeholder_secret
    from lienthong_gateway.mtls import ssl_options

    gw = settings.gateway
    try:
        refuse_placeholder_secret(gw, settings.http.host)
    except PlaceholderSecretError as refused:
        raise SystemExit(f"lienthong-gateway: {refused}") from None
    app = create_app(settings)
    tls = ssl_options(
        cert=str(gw.tls_cert_file) if gw.tls_cert_file else None,
        key=str(gw.tls_key_file) if gw.tls_key_file else None,
        client_ca=str(gw.tls_client_ca_file) if gw.tls_client_ca_file else None,
    )
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    uvicorn.run(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_seconds),
        # X-Forwarded-For/-Proto only from these proxies: they decide the client address the
        # sign-in throttle keys on and whether the request was HTTPS (Secure cookies).
        proxy_headers=True,
        forwarded_allow_ips=gw.forwarded_allow_ips,
        **tls,
    )
