"""`lienthong demo`: seed the directory, a dev PKI, a signing certificate, credentials and a
VDXP system for every demo agency (plus one VDXP system shared by two of them). Idempotent: run
it again and nothing changes but what was missing."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

import grpc

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.grpcutil import channel
from lienthong_common.mtls import ClientTls, local_tls
from lienthong_common.pki import (
    DevPki,
    IssuedIdentity,
    certificate_fingerprint,
    load_identity,
    write_identity,
)

ADMIN_ID = "admin"
# A VDXP system acting for two demo agencies (a provincial SaaS serving a department and a ward).
SHARED_VDXP_SYSTEM = "vxp.saas.demo"
SHARED_VDXP_AGENCIES = ("000.00.02.H49", "000.01.03.H49")
_PROBE = b"lienthong demo: is this secret still the system's?"


class VdxpSystemEntry(TypedDict):
    """What `lienthong demo` keeps of a VDXP system: its secret and the agencies it acts for."""

    secret: str
    agencies: list[str]


def credentials_path(data_dir: Path) -> Path:
    return data_dir / "credentials.json"


def identity_dir(data_dir: Path) -> Path:
    return data_dir / "pki" / "agencies"


def load_credentials(data_dir: Path) -> dict[str, str]:
    path = credentials_path(data_dir)
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data


def vdxp_systems_path(data_dir: Path) -> Path:
    return data_dir / "vdxp-systems.json"


def load_vdxp_systems(data_dir: Path) -> dict[str, VdxpSystemEntry]:
    """System id -> {secret, agencies}, as the last `lienthong demo` wrote them."""
    path = vdxp_systems_path(data_dir)
    if not path.exists():
        return {}
    data: dict[str, VdxpSystemEntry] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (0600 from the start, not chmod'ed afterwards)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)  # a file made earlier with wider permissions


def load_dataset(path: Path) -> list[dict[str, Any]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    records = raw["agencies"] if isinstance(raw, dict) else raw
    return [dict(r) for r in records]


def agency_message(record: dict[str, Any]) -> directory_pb2.Agency:
    fields = directory_pb2.Agency.DESCRIPTOR.fields_by_name
    return directory_pb2.Agency(**{k: v for k, v in record.items() if k in fields and v is not None})


def seed(
    *,
    directory_address: str,
    data_dir: Path,
    dataset: Path,
    timeout: float = 10.0,
    tls: ClientTls | None = None,
) -> dict[str, Any]:
    """Load the dataset into the directory and give each agency a credential and a signer.
    The directory is called as the administrators' gRPC identity: `tls`, by default the one
    `lienthong run` issued in data_dir/grpc-tls."""
    pki = DevPki.init(data_dir / "pki")
    credentials = load_credentials(data_dir)
    records = load_dataset(dataset)
    with channel(directory_address, tls=tls or local_tls(data_dir), peer="directory") as grpc_channel:
        stub = directory_pb2_grpc.DirectoryServiceStub(grpc_channel)
        raw = json.loads(dataset.read_text(encoding="utf-8"))
        imported = isinstance(raw, dict) and ("reorganizations" in raw or "groups" in raw)
        if imported:
            # A dated dataset (national.json, haiphong.json): one all-or-nothing import.
            reply = stub.ImportAgencies(
                directory_pb2.ImportAgenciesRequest(format="json", content=dataset.read_bytes()),
                timeout=max(timeout, 300.0),
            )
            if not reply.applied:
                rows = "; ".join(f"row {r.row} {r.code}: {r.reason}" for r in reply.rejected[:10])
                raise RuntimeError(f"{dataset}: import refused: {rows}")
            records = [r for r in records if r.get("status", "active") == "active"]
        # Parents first: shorter chains of non-zero segments are higher in the tree.
        records.sort(key=lambda r: (int(r.get("tier", 9)), str(r["code"])))
        for record in [] if imported else records:
            stub.UpsertAgency(
                directory_pb2.UpsertAgencyRequest(agency=agency_message(record)), timeout=timeout
            )
        for client_id, roles in [(ADMIN_ID, ["admin"])] + [(str(r["code"]), ["agency"]) for r in records]:
            secret = credentials.get(client_id)
            if secret:
                check = stub.VerifyCredential(
                    directory_pb2.VerifyCredentialRequest(client_id=client_id, secret=secret),
                    timeout=timeout,
                )
                if check.valid:
                    continue
            secret = secret or secrets.token_urlsafe(24)
            stub.SetCredential(
                directory_pb2.SetCredentialRequest(client_id=client_id, secret=secret, roles=roles),
                timeout=timeout,
            )
            credentials[client_id] = secret
        signers = 0
        for record in records:
            code = str(record["code"])
            identity = signer_for(pki, data_dir, code, str(record.get("name", code)))
            stub.RegisterCertificate(
                directory_pb2.RegisterCertificateRequest(
                    agency_code=code, certificate_der=_der(identity.cert_pem)
                ),
                timeout=timeout,
            )
            signers += 1
        path = credentials_path(data_dir)
        write_private(path, json.dumps(credentials, indent=2, ensure_ascii=False))
        vdxp: dict[str, Any] = {}
        try:
            systems = seed_vdxp_systems(
                stub, data_dir=data_dir, codes=[str(r["code"]) for r in records], timeout=timeout
            )
            vdxp = {"vdxp_systems": str(vdxp_systems_path(data_dir)), "vdxp_system_count": len(systems)}
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            vdxp = {"vdxp_systems": None, "vdxp_skipped": error.details()}  # no master key
    return {
        "agencies": len(records),
        "signers": signers,
        "credentials": str(path),
        "trust_root": str(pki.root_path),
        **vdxp,
    }


def seed_vdxp_systems(
    stub: directory_pb2_grpc.DirectoryServiceStub,
    *,
    data_dir: Path,
    codes: Sequence[str],
    timeout: float = 10.0,
) -> dict[str, VdxpSystemEntry]:
    """One VDXP system per agency (system id = its code) and SHARED_VDXP_SYSTEM for two, written
    to vdxp-systems.json (0600). A system already registered keeps its agencies and the secret
    the file holds; a secret the directory no longer accepts is replaced (overlap 0)."""
    known = load_vdxp_systems(data_dir)
    listed = stub.ListVdxpSystems(directory_pb2.ListVdxpSystemsRequest(), timeout=timeout).systems
    registered = {s.system_id: list(s.agency_codes) for s in listed}
    wanted = {code: [code] for code in codes}
    if all(code in wanted for code in SHARED_VDXP_AGENCIES):
        wanted[SHARED_VDXP_SYSTEM] = list(SHARED_VDXP_AGENCIES)
    # Systems of earlier seeds (another dataset) stay in the file, as credentials.json keeps theirs.
    systems: dict[str, VdxpSystemEntry] = {s: e for s, e in known.items() if s in registered}
    for system_id, agencies in wanted.items():
        entry = known.get(system_id)
        secret = entry["secret"] if entry else ""
        if system_id not in registered:
            reply = stub.AddVdxpSystem(
                directory_pb2.AddVdxpSystemRequest(
                    system_id=system_id, agency_codes=agencies, secret=secret
                ),
                timeout=timeout,
            )
            secret, agencies = reply.secret, list(reply.system.agency_codes)
        else:
            agencies = registered[system_id]
            if not (secret and _vdxp_secret_valid(stub, system_id, secret, timeout)):
                reply = stub.RotateVdxpSecret(
                    directory_pb2.RotateVdxpSecretRequest(
                        system_id=system_id, new_secret=secret, overlap_seconds=0
                    ),
                    timeout=timeout,
                )
                secret = reply.secret
        systems[system_id] = {"secret": secret, "agencies": agencies}
    write_private(vdxp_systems_path(data_dir), json.dumps(systems, indent=2, ensure_ascii=False))
    return systems


def _vdxp_secret_valid(
    stub: directory_pb2_grpc.DirectoryServiceStub, system_id: str, secret: str, timeout: float
) -> bool:
    signature = hmac.new(secret.encode("utf-8"), _PROBE, hashlib.sha256).hexdigest()
    reply = stub.VerifyVdxpSignature(
        directory_pb2.VerifyVdxpSignatureRequest(system_id=system_id, signed=_PROBE, signature=signature),
        timeout=timeout,
    )
    return bool(reply.valid)


def signer_for(pki: DevPki, data_dir: Path, code: str, name: str) -> IssuedIdentity:
    folder = identity_dir(data_dir)
    try:
        return load_identity(folder, code)
    except (FileNotFoundError, OSError):
        identity = pki.issue_signer(agency_code=code, common_name=name)
        write_identity(identity, folder, code)
        return identity


def _der(pem: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


__all__ = ["certificate_fingerprint", "load_vdxp_systems", "seed"]
