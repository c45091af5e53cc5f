"""Directory tables: agencies with their effective-dated versions, credentials, certificates,
VDXP systems."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    insert,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from lienthong_common.outbox import Outbox

_ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class Agency(Base):
    """An agency code known to the directory; what it is on a given day lives in its versions."""

    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgencyVersion(Base):
    """What an agency was from valid_from (inclusive) to valid_to (exclusive, open when None)."""

    __tablename__ = "agency_versions"
    __table_args__ = (
        Index("ix_agency_versions_code_valid_from", "code", "valid_from"),
        Index("ix_agency_versions_province_code", "province_code"),
        Index("ix_agency_versions_parent_code", "parent_code"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(20), ForeignKey("agencies.code"))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    name: Mapped[str] = mapped_column(Text)
    tier: Mapped[int] = mapped_column(Integer)
    parent_code: Mapped[str] = mapped_column(String(20), default="")
    province_code: Mapped[str] = mapped_column(String(3), default="")
    kind: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(20), default="active")
    successor_code: Mapped[str] = mapped_column(String(20), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    telephone: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str] = mapped_column(String(500), default="")
    illustrative: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Credential(Base):
    """A system's client secret, stored only as a salted scrypt hash."""

    __tablename__ = "credentials"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(Text)  # "scrypt$n$r$p$salt$hash", base64 parts
    roles: Mapped[str] = mapped_column(String(200))  # space-separated
    version: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Rotation with overlap: the previous secret stays valid until previous_valid_until.
    previous_secret_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_valid_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    # Optional mTLS binding: SHA-256 hex of the client certificate this system presents.
    client_cert_fingerprint: Mapped[str | None] = mapped_column(
        String(64), nullable=True, index=True
    )
    client_cert_required: Mapped[bool] = mapped_column(Boolean, default=False)


class VdxpSystem(Base):
    """A VDXP system (`systemid`): one document-management installation with a secret, acting
    for a set of agencies. See vdxp_systems.py."""

    __tablename__ = "vdxp_systems"

    system_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    agencies: Mapped[list[VdxpSystemAgency]] = relationship(
        cascade="all, delete-orphan", order_by="VdxpSystemAgency.agency_code", lazy="selectin"
    )
    secrets: Mapped[list[VdxpSystemSecret]] = relationship(
        cascade="all, delete-orphan", order_by="VdxpSystemSecret.id", lazy="selectin"
    )


class VdxpSystemAgency(Base):
    """An agency a VDXP system may send and receive for."""

    __tablename__ = "vdxp_system_agencies"

    system_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("vdxp_systems.system_id", ondelete="CASCADE"), primary_key=True
    )
    agency_code: Mapped[str] = mapped_column(
        String(20), ForeignKey("agencies.code"), primary_key=True, index=True
    )


class VdxpSystemSecret(Base):
    """One secret of a VDXP system, envelope-encrypted (envelope.py): the current one has no
    valid_until; during a rotation's overlap the previous one has the time it stops."""

    __tablename__ = "vdxp_system_secrets"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    system_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("vdxp_systems.system_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    algorithm: Mapped[str] = mapped_column(String(40))
    master_key_id: Mapped[str] = mapped_column(String(64), index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)  # the data key, AES-KW under the master key
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)  # nonce || AES-256-GCM(secret) || tag


class AgencyCertificate(Base):
    """A signing certificate registered to an agency (the binding sigverify checks)."""

    __tablename__ = "agency_certificates"
    __table_args__ = (UniqueConstraint("agency_code", "fingerprint"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    agency_code: Mapped[str] = mapped_column(String(20), ForeignKey("agencies.code"))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The binding's own period (dates, end exclusive); defaults to the certificate's validity.
    valid_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    valid_to: Mapped[date | None] = mapped_column(Date, nullable=True)


class AgencyGroup(Base):
    """A recipient group: a rule over the directory, or a named list of members."""

    __tablename__ = "agency_groups"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(30))
    base_code: Mapped[str] = mapped_column(String(20), default="")
    members: Mapped[str] = mapped_column(Text, default="")  # space-separated codes
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Exchange(Base):
    """When an agency last took part in an exchange (from delivery events), for connection status."""

    __tablename__ = "agency_exchanges"

    agency_code: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_exchange_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DirectoryRevision(Base):
    """One row (id 1): a counter raised in the very transaction that writes any agency, agency
    version or group, so an answer cached for revision R (resolution.py) is known to be stale as
    soon as a reader sees R + 1. Credentials, certificates and exchanges do not count."""

    __tablename__ = "directory_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


REVISION_ROW = 1
_BUMP = (
    update(DirectoryRevision)
    .where(DirectoryRevision.id == REVISION_ROW)
    .values(revision=DirectoryRevision.revision + 1)
)
_CREATE = insert(DirectoryRevision).values(id=REVISION_ROW, revision=1)


def _bump_revision(_mapper: Mapper[object], connection: Connection, _target: object) -> None:
    """Raise the revision inside the flush that writes the row (every ORM write path: upserts,
    reorganisations, imports, groups). The row is made by migration 0003; a database made by
    create_all gets it on its first write."""
    if connection.execute(_BUMP).rowcount == 0:
        connection.execute(_CREATE)


for _model in (Agency, AgencyVersion, AgencyGroup):
    for _when in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _when, _bump_revision)


OUTBOX = Outbox.for_metadata(Base.metadata)
