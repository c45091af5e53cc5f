"""The docstore's rules: receive a package within the size limit, read it, store it once."""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.edxml import (
    LENIENT,
    EdxmlError,
    EdxmlPackage,
    PackageFile,
    ParsePolicy,
    decode_base64_span,
    read_package_file,
)
from lienthong_common.errors import DomainError, ErrorKind, invalid, not_found
from lienthong_common.telemetry import current_traceparent
from lienthong_docstore import repository
from lienthong_docstore.blobstore import BlobStore, is_digest
from lienthong_docstore.events import emit_submitted
from lienthong_docstore.models import Document, DocumentAttachment


@dataclass(frozen=True)
class PackageHeader:
    """What the gateway says about a package before its bytes arrive."""

    id: str
    sender_code: str
    recipient_codes: tuple[str, ...] = ()
    idempotency_key: str = ""
    declared_size: int = 0


@dataclass(frozen=True)
class SpooledPackage:
    """A received package waiting on local disk, with its digest and size."""

    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Submission:
    """The outcome of storing a package: the document, and whether it was already there."""

    document: Document
    duplicate: bool = False
    replayed: bool = False


def too_large(size: int, limit: int, *, at_least: bool = False) -> DomainError:
    qualifier = "at least " if at_least else ""
    return DomainError(
        ErrorKind.TOO_LARGE,
        f"package is {qualifier}{size} bytes; the limit is {limit} bytes",
    )


@dataclass(frozen=True)
class ReceivedPackage:
    """A package as received: spooled to local disk, and read in the same pass (or the
    reason it could not be read, reported once an Idempotency-Key replay is ruled out)."""

    spooled: SpooledPackage
    parsed: PackageFile | None
    error: str | None = None


@contextlib.contextmanager
def received_package(
    chunks: Iterable[bytes],
    *,
    directory: Path,
    limit: int,
    policy: ParsePolicy = LENIENT,
    declared_size: int = 0,
) -> Iterator[ReceivedPackage]:
    """Write the chunks to a temp file while hashing and reading them, refusing as soon as
    `limit` is passed: one pass over the bytes, each chunk spooled before the parser sees it.
    The spool file (and any attachment the reading decoded to a file) is removed on exit."""
    if declared_size > limit:
        raise too_large(declared_size, limit)
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix="package-", suffix=".edxml")
    except FileNotFoundError:  # the first upload (or the folder was removed): make it
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix="package-", suffix=".edxml")
    path = Path(name)
    sha = hashlib.sha256()
    size = 0

    def spooled(out: BinaryIO) -> Iterator[bytes]:
        nonlocal size
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit, at_least=True)
            sha.update(chunk)
            out.write(chunk)
            yield chunk
        out.flush()  # all on disk before the reading may need the file

    try:
        with os.fdopen(fd, "wb") as out, contextlib.ExitStack() as reading:
            stream = spooled(out)
            parsed, error = None, None
            try:
                parsed = reading.enter_context(
                    read_package_file(
                        path, attachment_dir=directory, policy=policy, spans=True, chunks=stream
                    )
                )
            except EdxmlError as refusal:
                error = str(refusal)
            for _ in stream:  # the rest of a package the reading refused part way
                pass
            if size == 0:
                raise invalid("the package is empty")
            yield ReceivedPackage(SpooledPackage(path=path, sha256=sha.hexdigest(), size=size), parsed, error)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def parse_policy(max_package_bytes: int) -> ParsePolicy:
    """The lenient reading policy, with the parser's size guard matching the store's limit."""
    return replace(LENIENT, max_bytes=max(LENIENT.max_bytes, max_package_bytes))


def submit_package(
    *,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    header: PackageHeader,
    received: ReceivedPackage,
    duplicate_window: timedelta,
    now: datetime | None = None,
) -> Submission:
    """Store a received package once, record its metadata and queue `DocumentSubmitted`."""
    _check_header(header)
    package = received.spooled
    if header.idempotency_key:
        with transaction(sessions) as session:
            earlier = _replay(session, header=header, package=package)
        if earlier is not None:
            return earlier
    if received.parsed is None:
        raise invalid(received.error or "the package could not be read")
    return _store(
        sessions=sessions,
        blobs=blobs,
        header=header,
        package=package,
        parsed=received.parsed,
        duplicate_window=duplicate_window,
        now=now,
    )


def _store(
    *,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    header: PackageHeader,
    package: SpooledPackage,
    parsed: PackageFile,
    duplicate_window: timedelta,
    now: datetime | None,
) -> Submission:
    edxml = parsed.package
    declared_sender = edxml.header.sender.organ_id
    if declared_sender != header.sender_code:
        raise invalid(
            f"the package's From/OrganId is {declared_sender} but it was submitted by {header.sender_code}"
        )
    _check_lengths(edxml)
    submitted_at = (now or now_utc()).astimezone(UTC)
    since = submitted_at - duplicate_window
    # The blobs go first, the row after: a row never names bytes that are not on disk. A
    # duplicate is found in the writing transaction below, after its blobs were stored (a
    # resubmission of the same bytes links nothing new; different bytes under a DocumentId
    # already taken leave a blob no row names). One transaction per upload instead of a
    # look-up transaction before the blobs and the writing one after them.
    attachments = _store_attachments(parsed, package, blobs=blobs)
    document = Document(
        id=header.id,
        sender_code=header.sender_code,
        recipient_codes=_recipients(header, edxml),
        edxml_document_id=edxml.header.document_id,
        subject=edxml.header.subject,
        package_sha256=package.sha256,
        package_size=package.size,
        warnings=list(edxml.warnings),
        business_doc_type=edxml.business.doc_type,
        referenced_document_id=edxml.business.document_id,
        priority=edxml.header.priority,
        idempotency_key=header.idempotency_key or None,
        submitted_at=submitted_at,
        traceparent=current_traceparent(),
        attachments=attachments,
    )
    try:
        with transaction(sessions) as session:
            # In the writing transaction, to narrow the window between two concurrent uploads
            # of the same DocumentId. An id already taken is found by the insert itself
            # (primary key), below.
            existing = _find_duplicate(session, header=header, edxml=edxml, since=since)
            if existing is not None:
                return Submission(document=existing, duplicate=True)
            repository.add_document(session=session, document=document)
            emit_submitted(session=session, document=document)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key (or id) committed first.
        if header.idempotency_key:
            with transaction(sessions) as session:
                earlier = _replay(session, header=header, package=package)
            if earlier is not None:
                return earlier
        raise _id_taken(header.id) from None
    return Submission(document=document)


def _find_duplicate(
    session: Session, *, header: PackageHeader, edxml: EdxmlPackage, since: datetime
) -> Document | None:
    """The sender's earliest document with this DocumentId since `since` (an id lookup on the
    index first: the document is loaded only when there is one)."""
    found = repository.find_recent_id_by_edxml_id(
        session=session,
        sender_code=header.sender_code,
        edxml_document_id=edxml.header.document_id,
        since=since,
    )
    return repository.get_document(session=session, id=found) if found is not None else None


def get_document(*, session: Session, id: str) -> Document:
    """The stored document, or NOT_FOUND."""
    document = repository.get_document(session=session, id=id) if id else None
    if document is None:
        raise not_found(f"document {id} is not in the store")
    return document


@dataclass(frozen=True)
class StoredAttachment:
    """Where an attachment's bytes are: its own blob, or a span of a package blob."""

    attachment: DocumentAttachment
    package_sha256: str  # the package of the document the row belongs to

    @property
    def in_package(self) -> bool:
        return self.attachment.package_offset is not None

    @property
    def blob(self) -> str:
        """The digest of the blob holding the bytes."""
        return self.package_sha256 if self.in_package else self.attachment.sha256


def get_attachment(*, session: Session, sha256: str) -> StoredAttachment:
    """An attachment known to the store by its digest, or NOT_FOUND (the caller opens its
    blob: :attr:`StoredAttachment.blob`)."""
    digest = sha256.lower()
    if not is_digest(digest):
        raise invalid(f"{sha256!r} is not a SHA-256 digest (64 hex characters)")
    found = repository.find_attachment(session=session, sha256=digest)
    if found is None:
        raise not_found(f"attachment {digest} is not in the store")
    return StoredAttachment(attachment=found[0], package_sha256=found[1])


def decode_attachment(stream: BinaryIO, stored: StoredAttachment, chunk_bytes: int) -> Iterator[bytes]:
    """The bytes of an attachment kept inside its package, from the package blob's `stream`,
    `chunk_bytes` of stored data at a time: the body span decoded and checked against the
    attachment's digest and size (a mismatch raises DATA_LOSS after the bytes read so far:
    the store is damaged)."""
    attachment = stored.attachment
    offset, length = attachment.package_offset or 0, attachment.package_length or 0
    sha, size = hashlib.sha256(), 0
    with stream:
        stream.seek(offset)

        def body() -> Iterator[bytes]:
            left = length
            while left > 0 and (data := stream.read(min(chunk_bytes, left))):
                left -= len(data)
                yield data

        try:
            for data in decode_base64_span(body()):
                sha.update(data)
                size += len(data)
                yield data
        except binascii.Error as error:
            reason = f"its body in package {stored.package_sha256} is not base64: {error}"
            raise _damaged(attachment, reason) from None
    if size != attachment.size or sha.hexdigest() != attachment.sha256:
        raise _damaged(attachment, f"package {stored.package_sha256} gives back other bytes")


def _damaged(attachment: DocumentAttachment, reason: str) -> DomainError:
    return DomainError(ErrorKind.DAMAGED, f"attachment {attachment.sha256} is damaged: {reason}")


def _check_header(header: PackageHeader) -> None:
    if not header.id.strip():
        raise invalid("the package header has no document id")
    if len(header.id) > 36:
        raise invalid(f"document id {header.id!r} is longer than 36 characters")
    if not header.sender_code.strip():
        raise invalid("the package header has no sender code")


# Column widths in models.py; longer values are refused here rather than by the database.
_LIMITS = {"DocumentId": 512, "ContentId": 255, "AttachmentName": 1024, "ContentType": 255}


def _check_lengths(edxml: EdxmlPackage) -> None:
    values = [
        ("MessageHeader/DocumentId", "DocumentId", edxml.header.document_id),
        ("Bussiness/DocumentId", "DocumentId", edxml.business.document_id),
    ]
    for i, a in enumerate(edxml.attachments, 1):
        for field, value in (
            ("ContentId", a.content_id),
            ("AttachmentName", a.name),
            ("ContentType", a.content_type),
        ):
            values.append((f"AttachmentEncoded/Attachment[{i}]/{field}", field, value))
    for path, field, value in values:
        if len(value) > _LIMITS[field]:
            raise invalid(f"{path}: {len(value)} characters; at most {_LIMITS[field]} are stored")


def _replay(session: Session, *, header: PackageHeader, package: SpooledPackage) -> Submission | None:
    earlier = repository.find_by_idempotency_key(
        session=session, sender_code=header.sender_code, key=header.idempotency_key
    )
    if earlier is None:
        return None
    if earlier.package_sha256 != package.sha256:
        raise DomainError(
            ErrorKind.ALREADY_EXISTS,
            f"Idempotency-Key {header.idempotency_key} was used with a different body "
            f"(document {earlier.id})",
        )
    return Submission(document=earlier, replayed=True)


def _store_attachments(
    parsed: PackageFile, package: SpooledPackage, *, blobs: BlobStore
) -> list[DocumentAttachment]:
    """Put the package, and each attachment not kept inside it, in the blob store once per
    digest, all in one durable write; return the rows describing the attachments.

    An attachment whose body is plain base64 is not written a second time: its row points at
    the body's bytes in the package (stored anyway, byte for byte), so a package costs its own
    size on disk instead of about 1.75 times it."""
    # Every digest was computed while the bytes arrived, so the store can take the spool files
    # over instead of copying and hashing them again.
    files = [(a.path, a.sha256) for a in parsed.attachments if a.path is not None]
    blobs.put_files([*files, (package.path, package.sha256)])
    return [
        DocumentAttachment(
            position=position,
            content_id=attachment.content_id,
            name=attachment.name,
            content_type=attachment.content_type,
            sha256=attachment.sha256,
            size=attachment.size,
            package_offset=attachment.span[0] if attachment.span else None,
            package_length=attachment.span[1] - attachment.span[0] if attachment.span else None,
        )
        for position, attachment in enumerate(parsed.attachments)
    ]


def _recipients(header: PackageHeader, edxml: EdxmlPackage) -> list[str]:
    """The gateway's recipient list, else the package's To list; in order, without repeats."""
    codes = header.recipient_codes or tuple(org.organ_id for org in edxml.header.recipients)
    return list(dict.fromkeys(code for code in codes if code))


def _id_taken(id: str) -> DomainError:
    return DomainError(ErrorKind.ALREADY_EXISTS, f"document {id} is already in the store")
