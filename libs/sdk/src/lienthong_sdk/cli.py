"""The `lienthong` command: run the platform locally, and act as an agency against it."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lienthong_sdk.client import ApiError, LienthongClient

# Exit codes scripts can rely on: 0 done; 1 refused or failed (the gateway said no, a check
# failed); 2 usage error, or a verdict that is indeterminate; 3 the gateway or a platform service
# is unreachable (worth retrying later).
EXIT_OK, EXIT_FAILED, EXIT_INDETERMINATE, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 2, 3


class CliError(Exception):
    """A message for the user and a non-zero exit."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def data_dir() -> Path:
    return Path(os.environ.get("LIENTHONG_DATA_DIR", ".data")).resolve()


def gateway_url() -> str:
    return os.environ.get("LIENTHONG_URL", "http://127.0.0.1:8080")


def client_for(code: str) -> LienthongClient:
    from lienthong_sdk.demo import load_credentials

    credentials = load_credentials(data_dir())
    secret = os.environ.get("LIENTHONG_CLIENT_SECRET") or credentials.get(code)
    if not secret:
        raise CliError(
            f"no credentials for {code} in {data_dir() / 'credentials.json'}; "
            "run `lienthong demo` or set LIENTHONG_CLIENT_SECRET"
        )
    return LienthongClient(gateway_url(), code, secret)


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


# -- platform ----------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from lienthong_common.settings import load_settings
    from lienthong_sdk.local import LocalPlatform, kafka_script, repo_root, start_trace_viewer

    settings = load_settings()
    root = repo_root()
    kafka_port = int(settings.kafka.servers[0].rpartition(":")[2])
    started = time.monotonic()
    print(f"starting Kafka on 127.0.0.1:{kafka_port} …", flush=True)
    kafka_script("start", port=kafka_port)
    platform = LocalPlatform(
        data_dir=data_dir(), http_port=settings.http.port, kafka_bootstrap=settings.kafka.bootstrap_servers
    )
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(start_trace_viewer(), flush=True)
        print("migrating and starting the six services …", flush=True)
        platform.start()
        platform.wait_ready(timeout=90)
        from lienthong_sdk.demo import seed

        summary = seed(
            directory_address=platform.grpc_address("directory"),
            data_dir=platform.data_dir,
            dataset=root / "data" / "directory" / "demo.json",
        )
        print(
            f"all six services healthy in {time.monotonic() - started:.1f}s; "
            f"demo: {summary['agencies']} agencies, credentials in {summary['credentials']}, "
            f"VDXP systems in {summary.get('vdxp_systems') or summary.get('vdxp_skipped')}"
        )
        print(f"\n  gateway   {platform.gateway_url}   (API docs: {platform.gateway_url}/docs)")
        print(f"  logs      {platform.data_dir / 'logs'}")
        print("\n  try:  .venv/bin/lienthong agencies list --as 000.00.00.H49")
        print(
            "        .venv/bin/lienthong send --as 000.00.00.H49 --to 000.00.02.H49,000.01.03.H49 "
            "--subject 'Thử nghiệm' --attach some.pdf"
        )
        print("\nCtrl-C stops everything.", flush=True)
        while not stopping:
            for name, process in list(platform.processes.items()):
                if process.poll() is not None:
                    print(
                        f"{name} exited with {process.returncode}; restarting (log: "
                        f"{platform.log_path(name)})",
                        flush=True,
                    )
                    platform.start_service(name)
            time.sleep(1)
    finally:
        print("stopping services …", flush=True)
        platform.stop()
        if not args.keep_kafka:
            kafka_script("stop", port=kafka_port)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lienthong_common.mtls import ADMIN_IDENTITY, client_tls
    from lienthong_common.settings import load_settings
    from lienthong_sdk.demo import seed
    from lienthong_sdk.local import repo_root

    settings = load_settings()
    dataset = Path(args.dataset) if args.dataset else repo_root() / "data" / "directory" / "demo.json"
    summary = seed(
        directory_address=settings.services.directory,
        data_dir=data_dir(),
        dataset=dataset,
        tls=client_tls(settings, ADMIN_IDENTITY),
    )
    vdxp = (
        f"VDXP systems in {summary['vdxp_systems']}"
        if summary.get("vdxp_systems")
        else f"no VDXP systems: {summary.get('vdxp_skipped')}"
    )
    emit(
        args,
        summary,
        f"seeded {summary['agencies']} agencies; credentials in {summary['credentials']}; "
        f"trust root {summary['trust_root']}; {vdxp}",
    )
    return 0


def cmd_pki(args: argparse.Namespace) -> int:
    from lienthong_common.pki import DevPki, certificate_serial, load_identity, write_identity

    folder = Path(args.dir) if args.dir else data_dir() / "pki"
    pki = DevPki.init(folder, crl_base_url=getattr(args, "crl_base_url", None))
    if args.pki_command == "init":
        where = f"; CRLs at {pki.crl_base_url}/" if pki.crl_base_url else ""
        emit(
            args,
            {"root": str(pki.root_path), "crl_base_url": pki.crl_base_url},
            f"dev PKI ready; root CA at {pki.root_path}{where}",
        )
        return 0
    if args.pki_command == "issue":
        identity = pki.issue_signer(
            agency_code=args.agency,
            common_name=args.name or args.agency,
            purpose="seal" if args.seal else "signer",
        )
        out = write_identity(identity, folder / "agencies", args.agency + ("-seal" if args.seal else ""))
        emit(args, {"identity": str(out)}, f"issued a signing certificate for {args.agency} in {out}")
        return 0
    if args.pki_command == "revoke":
        if args.serial is not None:
            serial = int(args.serial, 0)
        else:
            try:
                serial = certificate_serial(load_identity(folder / "agencies", args.agency).cert_pem)
            except OSError as error:
                raise CliError(f"no identity for {args.agency} under {folder / 'agencies'}") from error
        pki.revoke(serial)
        emit(args, {"revoked": serial}, f"revoked serial {serial:#x}; the next CRL lists it")
        return 0
    crl = pki.crl_pem() if args.pem else pki.crl_der()
    if args.output:
        Path(args.output).write_bytes(crl)
        emit(args, {"crl": args.output}, f"wrote the issuing CA's CRL to {args.output}")
    else:
        sys.stdout.buffer.write(crl)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from lienthong_common.pades import sign_pdf
    from lienthong_common.pki import load_identity

    name = args.as_code + ("-seal" if args.seal else "")
    try:
        identity = load_identity(data_dir() / "pki" / "agencies", name)
    except (FileNotFoundError, OSError) as error:
        raise CliError(
            f"no signing identity for {name}; run `lienthong demo` or "
            f"`lienthong pki issue --agency {args.as_code}{' --seal' if args.seal else ''}`"
        ) from error
    source = read_file(args.file)
    if b"%PDF-" not in source[:1024]:
        raise CliError(f"{args.file} is not a PDF")
    signed = None
    # Signer first, then the seal: each signature goes to the first free field.
    fields = [args.field] if args.field else [f"Signature{n}" for n in range(1, 10)]
    for field_name in fields:
        try:
            signed = sign_pdf(source, identity, field_name=field_name, reason=args.reason or "")
            break
        except ValueError as error:
            if "already signed" in str(error) and not args.field:
                continue
            raise CliError(f"cannot sign {args.file}: {error}") from error
    if signed is None:
        raise CliError(f"cannot sign {args.file}: no free signature field")
    Path(args.output).write_bytes(signed)
    emit(
        args,
        {"output": args.output, "size": len(signed), "field": field_name},
        f"signed {args.file} → {args.output} ({field_name})",
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from lienthong_sdk.cli_trust import run_verify

    return run_verify(args)


def read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from error


# -- agency verbs ----------------------------------------------------------------------------
def cmd_send(args: argparse.Namespace) -> int:
    import tempfile

    from lienthong_common import edxml
    from lienthong_common.pki import load_identity
    from lienthong_sdk.builder import PackageBuilder

    recipients = [c.strip() for c in args.to.split(",") if c.strip()]
    if not recipients:
        raise CliError("--to needs at least one agency code")
    for path in args.attach or []:
        file_size(path)  # a clear error for a missing file, before anything is asked of the gateway
    identity = None
    if not args.no_envelope_signature:
        # The sender's dev identity (written by `lienthong demo` / `pki issue`), when there is one.
        try:
            identity = load_identity(data_dir() / "pki" / "agencies", args.as_code)
        except OSError:
            identity = None
    with client_for(args.as_code) as client:
        limits = client.limits()
        refuse_oversized(args.attach or [], limits)
        builder = (
            PackageBuilder(sender=org_from(client, args.as_code))
            .to(*recipients)
            .subject(args.subject)
            .code(args.code_number or str(random.randint(1000, 99999)), args.code_notation)
            .promulgated(args.place, dt.date.today())
            .priority(args.priority)
        )
        for path in args.attach or []:
            builder.attach_file(path)
        # The package goes to a temporary file and is uploaded from there: attachments are
        # read (and base64-encoded, and signed) as they stream, never whole in memory.
        with tempfile.TemporaryDirectory(prefix="lienthong-send-") as scratch:
            package = Path(scratch) / "package.edxml"
            try:
                with package.open("wb") as out:
                    size = builder.build_to(out, identity=identity)
            except edxml.EdxmlError as error:
                raise CliError(f"cannot build the package: {error}") from error
            if size > int(limits["max_package_bytes"]):
                raise CliError(
                    f"the package would be {size} bytes, over the gateway's limit; {limits['detail']}; "
                    "nothing was sent"
                )
            reply = client.send_package_file(package, idempotency_key=args.idempotency_key)
    states = ", ".join(f"{r['code']} {r['state']}" for r in reply["recipients"])
    emit(args, reply, f"sent {reply['id']} ({reply['document_id']}): {states}")
    return 0


def file_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from error


def refuse_oversized(paths: list[str], limits: dict[str, Any]) -> None:
    """Refuse, before anything is uploaded, attachments larger than the gateway takes."""
    from lienthong_common.package_limits import mib

    sizes = {path: file_size(path) for path in paths}
    total = sum(sizes.values())
    if total <= int(limits["max_attachment_bytes"]):
        return
    what = (
        f"{paths[0]} is {mib(total)} ({total} bytes)"
        if len(paths) == 1
        else f"the attachments are {mib(total)} ({total} bytes) together"
    )
    raise CliError(f"{what}: too large to send; {limits['detail']}; nothing was sent")


def org_from(client: LienthongClient, code: str) -> Any:
    from lienthong_common import edxml

    agency = client.agency(code)
    return edxml.Organization(
        organ_id=code,
        organ_name=agency.get("name", ""),
        email=agency.get("email", ""),
        telephone=agency.get("telephone", ""),
        organ_add=agency.get("address", ""),
        website=agency.get("website", ""),
    )


def progress(args: argparse.Namespace, message: str) -> None:
    """Progress of a long operation, on stderr (stdout stays clean for --json and pipes)."""
    if sys.stderr.isatty() or os.environ.get("LIENTHONG_PROGRESS"):
        print(f"\r{message}", end="", file=sys.stderr, flush=True)


def cmd_inbox(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        if args.all:
            items = []
            for item in client.inbox_all(limit=min(args.limit, 500)):
                items.append(item)
                if len(items) % 100 == 0:
                    progress(args, f"{len(items)} documents …")
            progress(args, f"{len(items)} documents\n")
            page: dict[str, Any] = {"items": items, "next_cursor": None}
        else:
            page = client.inbox(cursor=args.cursor or "", limit=args.limit)
    lines = [f"{i['id']}  {i['state']:<12} from {i['sender']}  {i['subject']}" for i in page["items"]]
    if page.get("next_cursor") and len(page["items"]) >= args.limit:
        lines.append(f"(more: --cursor {page['next_cursor']})")
    emit(args, page, "\n".join(lines) or "inbox is empty")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from lienthong_sdk.safe_files import open_new_file, safe_file_name, save_attachments

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    # Names come from the sender: sanitised, never through a symlink, never over a file. The
    # package streams to its file, and each attachment is decoded from there to its own.
    package_path, package_file = open_new_file(out, safe_file_name(f"{args.id}.edxml", index=0))
    try:
        with package_file, client_for(args.as_code) as client:
            client.download_content(
                args.id,
                package_file,
                progress=lambda got, total: progress(args, f"{got / 1e6:.1f}/{total / 1e6:.1f} MB"),
            )
            progress(args, "\n")
    except BaseException:
        package_path.unlink(missing_ok=True)
        raise
    package, written = save_attachments(out, package_path)
    files = [str(path) for path in [package_path, *written]]
    emit(
        args,
        {"id": args.id, "files": files, "subject": package.header.subject},
        "\n".join(f"wrote {f}" for f in files),
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        reply = client.post_status(args.id, args.code, args.description or "")
    states = ", ".join(f"{r['code']} {r['state']}" for r in reply["recipients"])
    emit(args, reply, f"status {args.code} recorded: {states}")
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        doc = client.document(args.id)
    lines = [
        f"{doc['id']}  {doc['document_id']}",
        f"  subject   {doc['subject']}",
        f"  sender    {doc['sender']}",
        f"  state     {doc['state']}",
        f"  trace     {doc.get('trace_id') or '-'}",
    ]
    validation = doc.get("validation")
    if validation:
        sub = f"/{validation['sub_indication']}" if validation.get("sub_indication") else ""
        lines.append(
            f"  signature {validation['indication']}{sub}"
            + (f" — {validation['reason']}" if validation.get("reason") else "")
        )
    hold = doc.get("hold")
    if hold:
        lines.append(
            f"  held      waiting for {hold['waiting_for']} since {hold['held_since']} "
            f"(attempt {hold['attempts']}, next {hold['next_attempt_at']}, refused after "
            f"{hold['deadline']}): {hold['reason']}"
        )
    if doc.get("refusal_reason"):
        lines.append(f"  refused   {doc['refusal_reason']}")
    lines.append("  recipients:")
    lines += [f"    {r['code']:<16} {r['state']}" for r in doc["recipients"]]
    if doc.get("timeline"):
        lines.append("  timeline:")
        lines += [
            f"    {t['at']}  {t['recipient']:<16} {t['code'] or '':<3} {t['state']}  {t['description']}"
            for t in doc["timeline"]
        ]
    emit(args, doc, "\n".join(lines))
    return 0


# -- parser ----------------------------------------------------------------------------------
def _send_limit_help() -> str:
    from lienthong_common.package_limits import DEFAULT_MAX_PACKAGE_BYTES, describe_limit

    return (
        f"Size: with the gateway's default limit, {describe_limit(DEFAULT_MAX_PACKAGE_BYTES)}. "
        "`send` asks the gateway for its own limit (GET /v1/limits) and refuses larger files "
        "before uploading anything."
    )


SEND_LIMIT_HELP = _send_limit_help()


def admin_parser() -> argparse.ArgumentParser:
    """`--as CODE` for administrators' verbs, defaulting to the demo's admin credential."""
    admin = argparse.ArgumentParser(add_help=False)
    admin.add_argument(
        "--as",
        dest="as_code",
        default="admin",
        metavar="CODE",
        help="an administrator's credential (default: admin, written by `lienthong demo`)",
    )
    return admin


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    agency = argparse.ArgumentParser(add_help=False)
    agency.add_argument(
        "--as",
        dest="as_code",
        required=True,
        metavar="CODE",
        help="act as this agency (credentials from `lienthong demo`)",
    )

    parser = argparse.ArgumentParser(
        prog="lienthong",
        description=__doc__,
        epilog="exit codes: 0 ok; 1 refused or failed; 2 usage error or indeterminate verdict; "
        "3 gateway or platform unreachable",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", parents=[common], help="run the whole platform locally")
    p.add_argument("--keep-kafka", action="store_true", help="leave the broker running on exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", parents=[common], help="seed directory, dev PKI and credentials")
    p.add_argument("--dataset", help="agencies JSON (default: data/directory/demo.json)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("pki", parents=[common], help="development PKI")
    pki_sub = p.add_subparsers(dest="pki_command", required=True)
    q = pki_sub.add_parser("init", parents=[common], help="create (or load) the dev root and issuing CA")
    q.add_argument("--dir")
    q.add_argument(
        "--crl-base-url",
        metavar="URL",
        help="CRL distribution point base for certificates issued from now on (e.g. http://127.0.0.1:8000/crl)",
    )
    q = pki_sub.add_parser("issue", parents=[common], help="issue an agency signing certificate")
    q.add_argument("--agency", required=True)
    q.add_argument("--name")
    q.add_argument("--seal", action="store_true", help="the agency's seal (stored as CODE-seal)")
    q.add_argument("--dir")
    q = pki_sub.add_parser("revoke", parents=[common], help="revoke a certificate (listed in the next CRL)")
    group = q.add_mutually_exclusive_group(required=True)
    group.add_argument("--agency", help="the identity issued to this agency")
    group.add_argument("--serial", help="a certificate serial number (decimal or 0x hex)")
    q.add_argument("--dir")
    q = pki_sub.add_parser("crl", parents=[common], help="write the issuing CA's current CRL")
    q.add_argument("-o", "--output")
    q.add_argument("--pem", action="store_true", help="PEM instead of DER")
    q.add_argument("--dir")
    p.set_defaults(func=cmd_pki)

    p = sub.add_parser("sign", parents=[common, agency], help="PAdES-sign a PDF as an agency")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seal", action="store_true", help="sign with the agency's seal certificate")
    p.add_argument("--field", help="signature field name (default: the first free SignatureN)")
    p.add_argument("--reason", default="")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser(
        "verify",
        parents=[common],
        help="verify a signed PDF or edXML package (exit 0 passed, 1 failed, 2 indeterminate)",
    )
    p.add_argument("file")
    p.add_argument(
        "--trust-root",
        action="append",
        default=[],
        metavar="PEM",
        help="trusted CA certificate(s); default: the platform's trust store (the dev root offline)",
    )
    p.add_argument(
        "--revocation",
        choices=["if-declared", "soft-fail", "hard-fail", "off"],
        default="if-declared",
        help="if-declared (default, as the platform): a CRL/OCSP source the certificates declare "
        "must answer, else INDETERMINATE/TRY_LATER; soft-fail passes without it and says "
        "'revocation NOT checked'; hard-fail requires revocation data for every certificate",
    )
    p.add_argument(
        "--soft-fail",
        dest="revocation",
        action="store_const",
        const="soft-fail",
        help="same as --revocation soft-fail",
    )
    p.add_argument("--allow-sha1", action="store_true", help="accept PAdES signatures made with SHA-1")
    p.add_argument("--offline", action="store_true", help="no network: revocation data from the cache only")
    p.add_argument(
        "--allow-revocation-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="let CRL/OCSP fetches reach this private network too (repeatable; e.g. 127.0.0.0/8 "
        "for the dev PKI's CRL server); by default they reach public addresses only",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show the validator's own diagnostics")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "send",
        parents=[common, agency],
        help="send a document",
        description="Build an edXML package from the files, sign its envelope with your identity "
        "from `lienthong demo` and submit it. " + SEND_LIMIT_HELP,
    )
    p.add_argument("--to", required=True, help="recipient codes, comma-separated")
    p.add_argument("--subject", required=True)
    p.add_argument(
        "--attach",
        action="append",
        metavar="FILE",
        help="a file to attach (repeat for several); together at most the largest attachment "
        "that fits, see above",
    )
    p.add_argument("--code-number", default="")
    p.add_argument("--code-notation", default="LT")
    p.add_argument("--place", default="Hà Nội")
    p.add_argument("--priority", type=int, default=0, choices=range(0, 5))
    p.add_argument("--idempotency-key")
    p.add_argument(
        "--no-envelope-signature",
        action="store_true",
        help="do not XML-DSig-sign the package with the sender's identity from `lienthong demo`",
    )
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("inbox", parents=[common, agency], help="documents delivered to you")
    p.add_argument("--cursor")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--all", action="store_true", help="every page, oldest first (progress on stderr)")
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("fetch", parents=[common, agency], help="download a document and its files")
    p.add_argument("id")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("status", parents=[common, agency], help="post a business status")
    p.add_argument("id")
    p.add_argument("--code", required=True, choices=["01", "02", "03", "04", "05", "06", "13", "15", "16"])
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("track", parents=[common, agency], help="follow a document")
    p.add_argument("id")
    p.set_defaults(func=cmd_track)

    # Verbs of each area live in their own module: cli_<area>.register(sub, common, agency).
    from lienthong_sdk import cli_directory, cli_routing, cli_statistics, cli_trust, cli_vdxp

    for module in (cli_directory, cli_statistics, cli_trust, cli_routing, cli_vdxp):
        module.register(sub, common, agency)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except ApiError as error:
        if getattr(args, "json", False):
            print(
                json.dumps(
                    {"error": error.problem or {"status": error.status, "detail": error.detail}},
                    ensure_ascii=False,
                ),
                file=sys.stderr,
            )
        print(f"lienthong: {error}", file=sys.stderr)
        code = EXIT_UNREACHABLE if error.status in (0, 502, 503, 504) else EXIT_FAILED
    except CliError as error:
        print(f"lienthong: {error}", file=sys.stderr)
        code = error.code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
