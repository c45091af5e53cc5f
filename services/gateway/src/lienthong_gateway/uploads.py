"""Receiving a package upload (POST /v1/documents, /vdxp/sendEdoc) without holding it twice.

A body up to ``SPOOL_ABOVE`` stays in memory (the common case: a signed letter is ~100 KB);
a larger one is written to a spool file under ``data_dir/gateway/spool`` as it arrives, read
from there (header only: attachments are checked, not kept) and streamed on to docstore. The
file is removed when the request ends, whatever happens.

The size limit (``gateway.max_request_bytes``, BodyLimitMiddleware first) is stated the way an
agency can act on it, as the largest attachment that fits (lienthong_common.package_limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from fastapi import Request

from lienthong_common.package_limits import describe_limit, max_attachment_bytes
from lienthong_gateway.problems import Problem

SPOOL_ABOVE = 1024 * 1024
WRITE_BYTES = 1024 * 1024  # what is gathered before one write to the spool file
CHUNK_BYTES = 256 * 1024  # what goes to docstore per message

PackageBody = bytes | Path


def package_limit_detail(limit: int, size: int | None) -> str:
    """Why a package was refused, with the largest attachment that fits."""
    if size is not None:
        said = f"package is {size} bytes; the limit is {limit} bytes"
    else:
        said = f"package exceeds the limit of {limit} bytes"
    return f"{said}: {describe_limit(limit)}"


def package_too_large(limit: int, size: int | None) -> Problem:
    """The 413 for a package over ``limit`` bytes (``size`` when declared)."""
    return Problem(
        413,
        package_limit_detail(limit, size),
        kind="package-too-large",
        max_package_bytes=limit,
        max_attachment_bytes=max_attachment_bytes(limit),
    )


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "gateway" / "spool"


@contextlib.asynccontextmanager
async def received_package(
    request: Request, *, limit: int, spool: Path, trailer: int = 0
) -> AsyncIterator[PackageBody]:
    """The request body: bytes when it is small, else the spool file holding it (removed on
    exit). A package may be ``limit`` bytes, the body ``trailer`` more (the CRLF VNPT's SDK
    appends); over that, 413 in attachment terms."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + trailer:
        raise package_too_large(limit, int(declared) - trailer)
    buffered: list[bytes] = []
    held = size = 0
    path: Path | None = None
    out: BinaryIO | None = None
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit + trailer:
                raise package_too_large(limit, None)
            buffered.append(chunk)
            held += len(chunk)
            if held <= (SPOOL_ABOVE if out is None else WRITE_BYTES):
                continue
            if out is None:
                path, opened = await asyncio.to_thread(_open_spool, spool)
                out = opened
            await asyncio.to_thread(_write, out, b"".join(buffered))
            buffered.clear()
            held = 0
        if out is None:
            yield b"".join(buffered)
            return
        await asyncio.to_thread(_finish, out, b"".join(buffered))
        buffered.clear()
        assert path is not None
        yield path
    finally:
        if out is not None:
            out.close()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _open_spool(folder: Path) -> tuple[Path, BinaryIO]:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix="upload-", suffix=".edxml")
    return Path(name), os.fdopen(fd, "wb")


def _write(out: BinaryIO, data: bytes) -> None:
    out.write(data)


def _finish(out: BinaryIO, rest: bytes) -> None:
    out.write(rest)
    out.flush()


def body_size(body: PackageBody) -> int:
    return len(body) if isinstance(body, bytes) else body.stat().st_size


def body_chunks(body: PackageBody, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The package's bytes, ``size`` at a time, from memory or from its spool file."""
    if isinstance(body, bytes):
        view = memoryview(body)
        for offset in range(0, len(view), size):
            yield bytes(view[offset : offset + size])
        return
    with body.open("rb") as source:
        while data := source.read(size):
            yield data
