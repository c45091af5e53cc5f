"""`lienthong trust …` (the platform's trust store) and the work behind `lienthong verify`.

Trust verbs talk to the gateway as an administrator (`--as admin` by default: the credential
`lienthong demo` writes). `verify` works offline: its trust roots come from `--trust-root`, else
from the platform's trust store when the gateway answers, else from the dev PKI root.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lienthong_sdk.cli import CliError, admin_parser, client_for, data_dir, emit, gateway_url, read_file
from lienthong_sdk.client import ApiError, LienthongClient

EXIT_PASSED, EXIT_FAILED, EXIT_INDETERMINATE = 0, 1, 2
_SEVERITY = {"TOTAL_PASSED": 0, "INDETERMINATE": 1, "TOTAL_FAILED": 2}
_EXIT = {"TOTAL_PASSED": EXIT_PASSED, "TOTAL_FAILED": EXIT_FAILED, "INDETERMINATE": EXIT_INDETERMINATE}


class TrustClient(LienthongClient):
    """The gateway's /v1/trust endpoints."""

    def __enter__(self) -> TrustClient:
        return self

    def anchors(self, *, include_removed: bool = False) -> dict[str, Any]:
        params = {"include_removed": "true"} if include_removed else {}
        reply: dict[str, Any] = self._request("GET", "/v1/trust/anchors", params=params).json()
        return reply

    def add_anchor(self, certificate_pem: str, *, note: str = "") -> dict[str, Any]:
        body = {"certificate_pem": certificate_pem, "note": note}
        reply: dict[str, Any] = self._request("POST", "/v1/trust/anchors", json=body).json()
        return reply

    def remove_anchor(self, fingerprint: str) -> dict[str, Any]:
        reply: dict[str, Any] = self._request("DELETE", f"/v1/trust/anchors/{fingerprint}").json()
        return reply


def _trust_client(code: str, *, timeout: float = 30.0) -> TrustClient:
    client = client_for(code)
    return TrustClient(client.base_url, client.client_id, client.client_secret, timeout=timeout)


def _anchor_line(anchor: dict[str, Any]) -> str:
    kind = "root" if anchor.get("self_signed") else "intermediate"
    removed = ""
    if anchor.get("removed_at"):
        removed = f"  removed {anchor['removed_at']} by {anchor['removed_by']}"
    return (
        f"{anchor['fingerprint'][:16]}  {kind:<12} {anchor['subject']}\n"
        f"{'':18}valid until {anchor.get('not_after', '?')}, added by {anchor.get('added_by', '?')} "
        f"in version {anchor.get('version_added', '?')}{removed}"
    )


# -- trust verbs -------------------------------------------------------------------------------
def cmd_trust_list(args: argparse.Namespace) -> int:
    with _trust_client(args.as_code) as client:
        reply = client.anchors(include_removed=args.all)
    lines = [f"trust store version {reply['version']}: {len(reply['anchors'])} anchor(s)"]
    lines += [_anchor_line(a) for a in reply["anchors"]]
    emit(args, reply, "\n".join(lines))
    return 0


def cmd_trust_add(args: argparse.Namespace) -> int:
    from lienthong_common.pki import split_pem_certificates

    data = read_file(args.pem)
    try:
        certificates = split_pem_certificates(data)
    except ValueError as error:
        raise CliError(f"{args.pem} holds no readable PEM certificate") from error
    if not certificates:
        raise CliError(f"{args.pem} holds no PEM certificate")
    results = []
    with _trust_client(args.as_code) as client:
        for pem in certificates:
            note = args.note or f"added from {Path(args.pem).name}"
            results.append(client.add_anchor(pem.decode(), note=note))
    lines = [
        f"{'added' if r['created'] else 'already trusted'}: {r['anchor']['subject']} "
        f"({r['anchor']['fingerprint'][:16]}); trust store version {r['version']}"
        for r in results
    ]
    emit(args, results if len(results) > 1 else results[0], "\n".join(lines))
    return 0


def cmd_trust_remove(args: argparse.Namespace) -> int:
    with _trust_client(args.as_code) as client:
        reply = client.remove_anchor(args.fingerprint)
    emit(
        args,
        reply,
        f"removed: {reply['anchor']['subject']}; trust store version {reply['version']}",
    )
    return 0


def register(sub: Any, common: argparse.ArgumentParser, agency: argparse.ArgumentParser) -> None:
    admin = admin_parser()
    p = sub.add_parser("trust", parents=[common], help="the platform's trust store (administrators)")
    t_sub = p.add_subparsers(dest="trust_command", required=True)
    q = t_sub.add_parser("list", parents=[common, admin], help="trusted CA certificates")
    q.add_argument("--all", action="store_true", help="include anchors that were removed")
    q.set_defaults(func=cmd_trust_list)
    q = t_sub.add_parser("add", parents=[common, admin], help="trust the CA certificate(s) in a PEM file")
    q.add_argument("pem", metavar="PEM")
    q.add_argument("--note", default="")
    q.set_defaults(func=cmd_trust_add)
    q = t_sub.add_parser("remove", parents=[common, admin], help="stop trusting a CA")
    q.add_argument("fingerprint", help="SHA-256 fingerprint (or its first 8+ hex digits)")
    q.set_defaults(func=cmd_trust_remove)


# -- verify --------------------------------------------------------------------------------------
@dataclass
class TrustRoots:
    """The roots a verification runs against and where they came from."""

    certificates: list[bytes]
    source: str


def resolve_trust_roots(paths: list[str]) -> TrustRoots:
    """--trust-root files, else the platform's trust store, else the dev PKI root."""
    from lienthong_common.pki import split_pem_certificates

    if paths:
        certificates: list[bytes] = []
        for path in paths:
            data = read_file(path)
            try:
                found = split_pem_certificates(data) if b"-----BEGIN" in data else [_der_certificate(data)]
            except ValueError as error:
                raise CliError(f"--trust-root {path} holds no readable certificate", 2) from error
            if not found:
                raise CliError(f"--trust-root {path} holds no certificate", 2)
            certificates.extend(found)
        return TrustRoots(certificates, "--trust-root " + ", ".join(paths))
    platform = _platform_trust_store()
    if platform is not None:
        return platform
    dev_root = data_dir() / "pki" / "root.pem"
    if dev_root.exists():
        return TrustRoots([dev_root.read_bytes()], f"dev PKI root {dev_root} (platform not reachable)")
    raise CliError(
        "no trust root: pass --trust-root PEM, start the platform, or run `lienthong demo` for the dev root",
        2,
    )


def _der_certificate(data: bytes) -> bytes:
    from cryptography import x509

    x509.load_der_x509_certificate(data)
    return data


def _platform_trust_store() -> TrustRoots | None:
    from lienthong_sdk.demo import load_credentials

    credentials = load_credentials(data_dir())
    client_id = os.environ.get("LIENTHONG_CLIENT_ID") or ("admin" if "admin" in credentials else "")
    client_id = client_id or next(iter(credentials), "")
    secret = os.environ.get("LIENTHONG_CLIENT_SECRET") or credentials.get(client_id, "")
    if not client_id or not secret:
        return None
    try:
        with TrustClient(gateway_url(), client_id, secret, timeout=3.0) as client:
            reply = client.anchors()
    except ApiError:
        return None  # unreachable, or this credential is refused: verify offline instead
    certificates = [a["certificate_pem"].encode() for a in reply["anchors"]]
    return TrustRoots(certificates, f"platform trust store version {reply['version']} at {gateway_url()}")


@dataclass
class FileVerdict:
    """What `lienthong verify` concluded about one file."""

    indication: str
    sub_indication: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def run_verify(args: argparse.Namespace) -> int:
    """`lienthong verify FILE`: a PDF or an edXML package; exit 0 passed, 1 failed, 2 indeterminate."""
    from lienthong_common.outbound import OutboundPolicy
    from lienthong_common.pades import PdfVerifier, RevocationCache

    try:
        # CRL/OCSP URLs are chosen by whoever issued the certificates: public addresses only,
        # unless the user names a private network (docs/adr/0080).
        outbound = OutboundPolicy.from_cidrs(getattr(args, "allow_revocation_cidr", []))
    except ValueError as error:
        raise CliError(f"--allow-revocation-cidr: {error}", 2) from None
    _quiet_validator_logs(verbose=getattr(args, "verbose", False))
    content = read_file(args.file)
    kind = _kind(content)
    if kind is None:
        what = "is empty" if not content.strip() else "is neither a PDF nor an edXML package"
        verdict = FileVerdict("TOTAL_FAILED", "FORMAT_FAILURE", f"{args.file} {what}")
    else:
        roots = resolve_trust_roots(args.trust_root)
        verifier = PdfVerifier(
            roots.certificates,
            revocation=args.revocation,
            allow_fetching=not args.offline and args.revocation != "off",
            revocation_cache=RevocationCache(data_dir() / "revocation-cache"),
            fetch_timeout=5.0,
            allow_sha1=getattr(args, "allow_sha1", False),
            outbound=outbound,
        )
        if kind == "pdf":
            verdict = _verify_pdf(content, verifier)
        else:
            verdict = _verify_edxml(content, verifier, roots, args)
        verdict.data["trust"] = {"source": roots.source, "anchors": len(roots.certificates)}
        verdict.data["policy"] = f"revocation={args.revocation}" + (",offline" if args.offline else "")
        verdict.lines.append(f"  trust: {roots.source}; policy {verdict.data['policy']}")
        unchecked = _revocation_not_checked(args.revocation, verdict.data)
        verdict.data["revocation_checked"] = not unchecked
        if unchecked:
            verdict.lines.append(f"  WARNING: revocation NOT checked ({unchecked})")
    data = {
        "file": args.file,
        "type": kind or "unknown",
        "indication": verdict.indication,
        "sub_indication": verdict.sub_indication or None,
        "message": verdict.message,
        **verdict.data,
    }
    sub = f"/{verdict.sub_indication}" if verdict.sub_indication else ""
    emit(args, data, "\n".join([f"{verdict.indication}{sub}: {verdict.message}", *verdict.lines]))
    return _EXIT.get(verdict.indication, EXIT_INDETERMINATE)


def _quiet_validator_logs(*, verbose: bool) -> None:
    """pyHanko logs every failed validation with a traceback; a verdict is the whole answer."""
    import logging

    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return
    for name in ("pyhanko", "pyhanko_certvalidator", "lienthong_common"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _revocation_not_checked(mode: str, data: dict[str, Any]) -> str:
    """Why revocation was not confirmed for a passing signature ("" when it was, or not passing)."""
    if mode == "off":
        return "--revocation off"
    signatures = list(data.get("signatures", []))
    for item in data.get("pdfs", []):
        signatures += item.get("signatures", [])
    if any(sig.get("revocation_confirmed") is False for sig in signatures):
        return f"{mode}: a declared CRL/OCSP source could not be reached; the signer may be revoked"
    return ""


def _kind(content: bytes) -> str | None:
    head = content[:1024]
    if b"%PDF-" in head:
        return "pdf"
    text = content[:8192].lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"<" in text and b"edXML" in text:
        return "edxml"
    return None


def _signature_view(sig: Any) -> dict[str, Any]:
    return {
        "field": sig.field_name,
        "indication": str(sig.indication),
        "sub_indication": sig.sub_indication,
        "signer": sig.signer_subject,
        "agency": sig.agency_code,
        "signing_time": sig.signing_time.isoformat() if sig.signing_time else None,
        "chain": sig.chain,
        "revocation": list(sig.revocation),
        "revocation_confirmed": sig.revocation_confirmed,
        "modified_after_signing": sig.modified_after_signing,
        "message": sig.message,
    }


def _signature_lines(signatures: list[Any], indent: str = "  ") -> list[str]:
    lines = []
    for sig in signatures:
        sub = f"/{sig.sub_indication}" if sig.sub_indication else ""
        who = sig.signer_subject or "unknown signer"
        lines.append(f"{indent}{sig.field_name}: {sig.indication}{sub} — {who} — {sig.message}")
        lines += [f"{indent}    revocation: {line}" for line in sig.revocation]
    return lines


def _verify_pdf(content: bytes, verifier: Any) -> FileVerdict:
    verdict = verifier.verify(content)
    return FileVerdict(
        str(verdict.indication),
        verdict.sub_indication or "",
        verdict.message,
        {"signatures": [_signature_view(s) for s in verdict.signatures]},
        _signature_lines(verdict.signatures),
    )


def _verify_edxml(content: bytes, verifier: Any, roots: TrustRoots, args: argparse.Namespace) -> FileVerdict:
    from lienthong_common.edxml import EdxmlError, parse_package
    from lienthong_common.pades import AttachmentRefused, UnzipBudget, pdfs_in_attachment

    try:
        package = parse_package(content)
    except EdxmlError as error:
        return FileVerdict("TOTAL_FAILED", "FORMAT_FAILURE", f"not a valid edXML package: {error}")
    sender = package.header.sender.organ_id
    results: list[dict[str, Any]] = []
    lines: list[str] = [f"  package from {sender}"]
    outcomes: list[tuple[str, str, str]] = []  # indication, sub-indication, message
    unsigned: list[str] = []
    budget = UnzipBudget(256 * 1024 * 1024)
    for attachment in package.attachments:
        try:
            pdfs = pdfs_in_attachment(attachment, budget)
        except AttachmentRefused as refused:
            outcomes.append(("TOTAL_FAILED", "FORMAT_FAILURE", f"attachment {attachment.name!r}: {refused}"))
            results.append({"name": attachment.name, "indication": "TOTAL_FAILED", "message": str(refused)})
            continue
        for pdf in pdfs:
            verdict = verifier.verify(pdf.data)
            view = {
                "name": pdf.name,
                "indication": str(verdict.indication),
                "sub_indication": verdict.sub_indication,
                "message": verdict.message,
                "signatures": [_signature_view(s) for s in verdict.signatures],
            }
            results.append(view)
            lines.append(f"  {pdf.name}: {verdict.indication} — {verdict.message}")
            lines += _signature_lines(verdict.signatures, "    ")
            if verdict.sub_indication == "NO_SIGNATURE":
                unsigned.append(pdf.name)
                continue
            outcomes.append(
                (str(verdict.indication), verdict.sub_indication or "", f"{pdf.name!r}: {verdict.message}")
            )
            for sig in verdict.signatures:
                if sig.agency_code and sig.agency_code != sender:
                    lines.append(
                        f"    note: {sig.field_name}'s certificate names agency {sig.agency_code}, "
                        f"the package is from {sender} (the platform checks the binding in the directory)"
                    )
    envelope = _verify_envelope(content, roots, args)
    if envelope.get("checked") and envelope.get("present"):
        sub_indication = envelope.get("sub_indication") or ""
        outcomes.append((envelope["indication"], sub_indication, f"envelope: {envelope['message']}"))
    lines.append(f"  envelope signature: {envelope['summary']}")
    data: dict[str, Any] = {"sender": sender, "pdfs": results, "envelope": envelope}
    if not outcomes:
        what = f"unsigned: {', '.join(repr(n) for n in unsigned)}" if unsigned else "it carries no PDF"
        return FileVerdict(
            "INDETERMINATE", "NO_SIGNATURE", f"no signed PDF in the package ({what})", data, lines
        )
    worst = max(outcomes, key=lambda o: _SEVERITY.get(o[0], 1))
    if worst[0] == "TOTAL_PASSED":
        signed = len([o for o in outcomes if not o[2].startswith("envelope")])
        message = f"{signed} signed PDF(s) valid" + (f"; unsigned: {', '.join(unsigned)}" if unsigned else "")
        return FileVerdict("TOTAL_PASSED", "", message, data, lines)
    return FileVerdict(worst[0], worst[1], worst[2], data, lines)


def _verify_envelope(content: bytes, roots: TrustRoots, args: argparse.Namespace) -> dict[str, Any]:
    try:
        from lienthong_common.edxml.signature import verify_envelope
    except ImportError:
        return {
            "checked": False,
            "summary": "not checked (this installation has no XML-DSig verifier)",
        }
    # The envelope checker never fetches revocation data (the binding signatures are the PDFs'):
    # under if-declared it checks what it has, as soft-fail; legacy rsa-sha1 as on the platform.
    mode: Any = "soft-fail" if args.revocation == "if-declared" else args.revocation
    verdict = verify_envelope(content, trust_roots=roots.certificates, allow_rsa_sha1=True, revocation=mode)
    indication = str(verdict.indication)
    if verdict.sub_indication == "NO_SIGNATURE":
        return {"checked": True, "present": False, "summary": "absent (not required by default)"}
    sub = f"/{verdict.sub_indication}" if verdict.sub_indication else ""
    return {
        "checked": True,
        "present": True,
        "indication": indication,
        "sub_indication": verdict.sub_indication,
        "message": verdict.message,
        "signer": verdict.signer_subject,
        "warnings": list(verdict.warnings),
        "summary": f"{indication}{sub} — {verdict.message}",
    }
