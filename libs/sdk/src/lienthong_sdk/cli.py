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

EXIT_OK, EXIT_FAILED, EXIT_INDETERMINATE, EXIT_USAGE = 0, 1, 2, 2


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
    from lienthong_sdk.local import LocalPlatform, kafka_script, repo_root

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
            f"demo: {summary['agencies']} agencies, credentials in {summary['credentials']}"
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
    from lienthong_common.settings import load_settings
    from lienthong_sdk.demo import seed
    from lienthong_sdk.local import repo_root

    settings = load_settings()
    dataset = Path(args.dataset) if args.dataset else repo_root() / "data" / "directory" / "demo.json"
    summary = seed(directory_address=settings.services.directory, data_dir=data_dir(), dataset=dataset)
    emit(
        args,
        summary,
        f"seeded {summary['agencies']} agencies; credentials in {summary['credentials']}; "
        f"trust root {summary['trust_root']}",
    )
    return 0


def cmd_pki(args: argparse.Namespace) -> int:
    from lienthong_common.pki import DevPki, write_identity

    folder = Path(args.dir) if args.dir else data_dir() / "pki"
    pki = DevPki.init(folder)
    if args.pki_command == "init":
        emit(args, {"root": str(pki.root_path)}, f"dev PKI ready; root CA at {pki.root_path}")
        return 0
    identity = pki.issue_signer(agency_code=args.agency, common_name=args.name or args.agency)
    out = write_identity(identity, folder / "agencies", args.agency)
    emit(args, {"identity": str(out)}, f"issued a signing certificate for {args.agency} in {out}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from lienthong_common.pades import sign_pdf
    from lienthong_common.pki import load_identity

    try:
        identity = load_identity(data_dir() / "pki" / "agencies", args.as_code)
    except (FileNotFoundError, OSError) as error:
        raise CliError(
            f"no signing identity for {args.as_code}; run `lienthong demo` or "
            f"`lienthong pki issue --agency {args.as_code}`"
        ) from error
    source = read_file(args.file)
    signed = sign_pdf(source, identity)
    Path(args.output).write_bytes(signed)
    emit(args, {"output": args.output, "size": len(signed)}, f"signed {args.file} → {args.output}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from lienthong_common.pades import Indication, PdfVerifier

    roots = [read_file(p) for p in args.trust_root]
    default_root = data_dir() / "pki" / "root.pem"
    if not roots and default_root.exists():
        roots = [default_root.read_bytes()]
    if not roots:
        raise CliError("no trust root: pass --trust-root PEM (or run `lienthong demo` for the dev root)")
    verdict = PdfVerifier(trust_roots=roots).verify(read_file(args.file))
    data: dict[str, Any] = {
        "indication": str(verdict.indication),
        "sub_indication": verdict.sub_indication,
        "message": verdict.message,
        "signatures": [
            {
                "field": s.field_name,
                "indication": str(s.indication),
                "sub_indication": s.sub_indication,
                "signer": s.signer_subject,
                "agency": s.agency_code,
                "signing_time": s.signing_time.isoformat() if s.signing_time else None,
                "chain": s.chain,
                "message": s.message,
            }
            for s in verdict.signatures
        ],
    }
    lines = [
        f"{verdict.indication}{'/' + verdict.sub_indication if verdict.sub_indication else ''}: "
        f"{verdict.message}"
    ]
    lines += [
        f"  {s.field_name}: {s.indication} {s.sub_indication or ''} signer {s.signer_subject}"
        for s in verdict.signatures
    ]
    emit(args, data, "\n".join(lines))
    return {Indication.TOTAL_PASSED: EXIT_OK, Indication.TOTAL_FAILED: EXIT_FAILED}.get(
        verdict.indication, EXIT_INDETERMINATE
    )


def read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from error


# -- agency verbs ----------------------------------------------------------------------------
def cmd_send(args: argparse.Namespace) -> int:
    from lienthong_common import edxml

    recipients = [c.strip() for c in args.to.split(",") if c.strip()]
    if not recipients:
        raise CliError("--to needs at least one agency code")
    attachments = []
    for index, path in enumerate(args.attach or [], start=1):
        data = read_file(path)
        content_type = "application/pdf" if path.lower().endswith(".pdf") else "application/octet-stream"
        attachments.append(
            edxml.Attachment(
                content_id=f"cid:{index}", name=Path(path).name, content_type=content_type, data=data
            )
        )
    with client_for(args.as_code) as client:
        sender = org_from(client, args.as_code)
        orgs = [edxml.Organization(organ_id=c) for c in recipients]
        today = dt.date.today()
        header = edxml.MessageHeader(
            sender=sender,
            recipients=orgs,
            code_number=args.code_number or str(random.randint(1000, 99999)),
            code_notation=args.code_notation,
            promulgation_place=args.place,
            promulgation_date=today,
            document_type=1,
            document_type_name="Công văn",
            subject=args.subject,
            priority=args.priority,
        )
        package = edxml.build_package(edxml.EdxmlPackage(header=header, attachments=attachments))
        reply = client.send_package(package, idempotency_key=args.idempotency_key)
    states = ", ".join(f"{r['code']} {r['state']}" for r in reply["recipients"])
    emit(args, reply, f"sent {reply['id']} ({reply['document_id']}): {states}")
    return 0


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


def cmd_inbox(args: argparse.Namespace) -> int:
    with client_for(args.as_code) as client:
        page = client.inbox(cursor=args.cursor or "", limit=args.limit)
    lines = [f"{i['id']}  {i['state']:<12} from {i['sender']}  {i['subject']}" for i in page["items"]]
    if page.get("next_cursor") and len(page["items"]) >= args.limit:
        lines.append(f"(more: --cursor {page['next_cursor']})")
    emit(args, page, "\n".join(lines) or "inbox is empty")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from lienthong_common import edxml

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with client_for(args.as_code) as client:
        content = client.content(args.id)
    (out / f"{args.id}.edxml").write_bytes(content)
    package = edxml.parse_package(content)
    files = [str(out / f"{args.id}.edxml")]
    for attachment in package.attachments:
        target = out / Path(attachment.name).name
        target.write_bytes(attachment.data)
        files.append(str(target))
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
    ]
    validation = doc.get("validation")
    if validation:
        sub = f"/{validation['sub_indication']}" if validation.get("sub_indication") else ""
        lines.append(
            f"  signature {validation['indication']}{sub}"
            + (f" — {validation['reason']}" if validation.get("reason") else "")
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

    parser = argparse.ArgumentParser(prog="lienthong", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", parents=[common], help="run the whole platform locally")
    p.add_argument("--keep-kafka", action="store_true", help="leave the broker running on exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", parents=[common], help="seed directory, dev PKI and credentials")
    p.add_argument("--dataset", help="agencies JSON (default: data/directory/demo.json)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("pki", parents=[common], help="development PKI")
    pki_sub = p.add_subparsers(dest="pki_command", required=True)
    q = pki_sub.add_parser("init", parents=[common])
    q.add_argument("--dir")
    q = pki_sub.add_parser("issue", parents=[common])
    q.add_argument("--agency", required=True)
    q.add_argument("--name")
    q.add_argument("--dir")
    p.set_defaults(func=cmd_pki)

    p = sub.add_parser("sign", parents=[common, agency], help="PAdES-sign a PDF as an agency")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("verify", parents=[common], help="verify a signed PDF (exit 0/1/2)")
    p.add_argument("file")
    p.add_argument("--trust-root", action="append", default=[], metavar="PEM")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("send", parents=[common, agency], help="send a document")
    p.add_argument("--to", required=True, help="recipient codes, comma-separated")
    p.add_argument("--subject", required=True)
    p.add_argument("--attach", action="append", metavar="FILE")
    p.add_argument("--code-number", default="")
    p.add_argument("--code-notation", default="LT")
    p.add_argument("--place", default="Hà Nội")
    p.add_argument("--priority", type=int, default=0, choices=range(0, 5))
    p.add_argument("--idempotency-key")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("inbox", parents=[common, agency], help="documents delivered to you")
    p.add_argument("--cursor")
    p.add_argument("--limit", type=int, default=50)
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
    from lienthong_sdk import cli_directory, cli_statistics, cli_trust

    for module in (cli_directory, cli_statistics, cli_trust):
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
        code = 1
    except CliError as error:
        print(f"lienthong: {error}", file=sys.stderr)
        code = error.code
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
