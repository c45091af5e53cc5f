"""Test data for sigverify: edXML packages from the dev PKI and a fake certificate registry."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from lienthong_common.edxml import (
    Attachment,
    EdxmlPackage,
    MessageHeader,
    Organization,
    TraceHeader,
    build_package,
)
from lienthong_common.pki import IssuedIdentity, certificate_fingerprint
from lienthong_common.settings import GatewaySettings, Settings, SigverifySettings
from lienthong_sigverify.domain import Binding
from lienthong_sigverify.trust import TrustSnapshot

SENDER = "000.00.00.H49"
OTHER_AGENCY = "000.00.24.H44"
RECIPIENT = "000.00.00.G22"


@dataclass
class FakeBindings:
    """The directory's certificate registry, in memory: fingerprint -> agency codes."""

    owners: dict[str, list[str]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def register(self, identity: IssuedIdentity, agency_code: str) -> None:
        self.owners.setdefault(certificate_fingerprint(identity.cert_pem), []).append(agency_code)

    def __call__(self, *, agency_code: str, fingerprint: str) -> Binding:
        self.calls.append((agency_code, fingerprint))
        owners = self.owners.get(fingerprint, [])
        return Binding(bound=agency_code in owners, owner_codes=tuple(owners))


def pdf_attachment(data: bytes, name: str = "cong-van.pdf", cid: str = "cid:1") -> Attachment:
    return Attachment(cid, name, "application/pdf", data)


def make_package(attachments: list[Attachment], *, sender: str = SENDER) -> bytes:
    """A real edXML package from `sender` to the government office with `attachments`."""
    header = MessageHeader(
        sender=Organization(sender, "UBND tỉnh Quảng Ninh"),
        recipients=[Organization(RECIPIENT, "Văn phòng Chính phủ")],
        code_number="12",
        code_notation="UBND-VP",
        promulgation_place="Quảng Ninh",
        promulgation_date=datetime.date(2025, 7, 1),
        document_type=1,
        document_type_name="Công văn",
        subject="Báo cáo tình hình trao đổi văn bản điện tử",
    )
    return build_package(
        EdxmlPackage(
            header=header,
            traces=[TraceHeader(sender, "2025/07/01 08:00:00")],
            attachments=attachments,
        )
    )


def make_settings(tmp_path: Path, *, roots: list[Path] | None = None, **sigverify: object) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        sigverify=SigverifySettings(trust_roots=roots or [], **sigverify),  # type: ignore[arg-type]
        gateway=GatewaySettings(),
    )


@dataclass
class FixedTrust:
    """A trust store that always answers the same snapshot."""

    snapshot_value: TrustSnapshot

    def snapshot(self, *, seed: bool = True) -> TrustSnapshot:
        return self.snapshot_value
