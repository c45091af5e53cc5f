"""`lienthong demo`: seed the directory, a dev PKI, a signing certificate and credentials
for every demo agency. Idempotent: run it again and nothing changes but what was missing."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import grpc

from lienthong.directory.v1 import directory_pb2, directory_pb2_grpc
from lienthong_common.pki import (
    DevPki,
    IssuedIdentity,
    certificate_fingerprint,
    load_identity,
    write_identity,
)

ADMIN_ID = "admin"


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


def load_dataset(path: Path) -> list[dict[str, Any]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    records = raw["agencies"] if isinstance(raw, dict) else raw
    return [dict(r) for r in records]


def agency_message(record: dict[str, Any]) -> directory_pb2.Agency:
    fields = directory_pb2.Agency.DESCRIPTOR.fields_by_name
    return directory_pb2.Agency(**{k: v for k, v in record.items() if k in fields and v is not None})


def seed(*, directory_address: str, data_dir: Path, dataset: Path, timeout: float = 10.0) -> dict[str, Any]:
    """Load the dataset into the directory and give each agency a credential and a signer."""
    pki = DevPki.init(data_dir / "pki")
    credentials = load_credentials(data_dir)
    records = load_dataset(dataset)
    with grpc.insecure_channel(directory_address) as channel:
        stub = directory_pb2_grpc.DirectoryServiceStub(channel)
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
    path.write_text(json.dumps(credentials, indent=2, ensure_ascii=False))
    path.chmod(0o600)
    return {
        "agencies": len(records),
        "signers": signers,
        "credentials": str(path),
        "trust_root": str(pki.root_path),
    }


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


__all__ = ["certificate_fingerprint", "seed"]
