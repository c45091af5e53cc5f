"""Support for the test suites: a throw-away database on the repository's local PostgreSQL,
an independent XML-DSig signer (xmlsec1), and the events of a document's life for the tests of
the services that consume them.

Not used by the services. The server is the one `infra/postgres.sh` runs (started if it is not,
idempotently) on `PGPORT` (default 55432), the same one the end-to-end tests use; xmlsec1 is
Debian's, installed by `infra/xmlsec1.sh` (`make test` runs it).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lienthong.events.v1 import events_pb2
from lienthong_common import edxml
from lienthong_common.ids import new_id
from lienthong_common.outbox import new_event

REPOSITORY = Path(__file__).resolve().parents[4]


class InfraError(RuntimeError):
    """An infra/ script failed; the message carries its output."""


def run_infra(script: str, *args: str, env: dict[str, str], root: Path = REPOSITORY) -> str:
    """Run `infra/<script> args` with `env` over this process's environment; its stdout."""
    result = subprocess.run(
        ["bash", str(root / "infra" / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"infra/{script} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def fresh_databases(pgport: int, prefix: str, names: Iterable[str]) -> dict[str, str]:
    """An empty database `<prefix>_<name>` per name on the local server: name -> SQLAlchemy URL."""
    import psycopg

    urls = {}
    server = f"lienthong:lienthong@127.0.0.1:{pgport}"
    with psycopg.connect(f"postgresql://{server}/postgres", autocommit=True) as conn:
        for name in names:
            database = f"{prefix}_{name}"
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
            conn.execute(f'CREATE DATABASE "{database}"')
            urls[name] = f"postgresql+psycopg://{server}/{database}"
    return urls


@contextmanager
def throwaway_postgres(prefix: str, *, root: Path = REPOSITORY) -> Iterator[str]:
    """A new empty database `<prefix>_<random>`: its SQLAlchemy URL; dropped afterwards."""
    import psycopg

    port = os.environ.get("PGPORT", "55432")
    started = subprocess.run(
        ["bash", str(root / "infra" / "postgres.sh"), "start"],
        env={**os.environ, "PGPORT": port},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert started.returncode == 0, f"infra/postgres.sh start failed:\n{started.stderr[-2000:]}"
    admin = f"postgresql://lienthong:lienthong@127.0.0.1:{port}/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://lienthong:lienthong@127.0.0.1:{port}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_XMLSEC1_TEMPLATE = (
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
    '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
    '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#{method}"/>'
    '<ds:Reference URI=""><ds:Transforms>'
    '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    '</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
    "<ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/>"
    "<ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>\n    "
)


def xmlsec1_sign(package: Path, identity: object, folder: Path, *, rsa: bool = False) -> Path:
    """``package`` (an unsigned edXML file, as ``write_package`` writes it) signed by xmlsec1, the
    independent signer the tests check the platform's verifier against: an enveloped signature
    after TraceHeaderList, the signer's certificate and its issuing CA in X509Data. ``identity``
    is a lienthong_common.pki.IssuedIdentity. Returns the signed file (in ``folder``)."""
    from lienthong_common.pki import IssuedIdentity, split_pem_certificates

    assert isinstance(identity, IssuedIdentity)
    xmlsec1 = shutil.which("xmlsec1")
    if xmlsec1 is None:
        raise RuntimeError("xmlsec1 is required: bash infra/xmlsec1.sh installs it (make test does)")
    template = folder / "xmlsec1-template.edxml"
    anchor = b"</edXML:TraceHeaderList>\n    "
    signature = _XMLSEC1_TEMPLATE.format(method="rsa-sha256" if rsa else "ecdsa-sha256").encode()
    with package.open("rb") as source, template.open("wb") as out:
        head = source.read(64 * 1024)
        at = head.index(anchor) + len(anchor)
        out.write(head[:at] + signature + head[at:])
        shutil.copyfileobj(source, out)
    keys = [folder / "xmlsec1-key.pem", folder / "xmlsec1-cert.pem", folder / "xmlsec1-issuing.pem"]
    keys[0].write_bytes(identity.key_pem)
    keys[1].write_bytes(identity.cert_pem)
    keys[2].write_bytes(split_pem_certificates(identity.chain_pem[0])[0])
    signed = folder / "xmlsec1-signed.edxml"
    subprocess.run(
        [
            xmlsec1,
            "--sign",
            "--privkey-pem",
            ",".join(map(str, keys)),
            "--output",
            str(signed),
            str(template),
        ],
        check=True,
        capture_output=True,
    )
    template.unlink()
    return signed


# The events of a document's life (lienthong.events.v1), for consumers' tests.


def at(iso: str) -> events_pb2.Event:
    event = new_event(new_id())
    event.occurred_at.FromJsonString(iso)
    return event


def verified(
    sender: str, recipients: list[str], when: str, indication: str = "TOTAL_PASSED"
) -> events_pb2.Event:
    event = at(when)
    event.verified.CopyFrom(
        events_pb2.DocumentVerified(sender_code=sender, recipient_codes=recipients, indication=indication)
    )
    return event


def delivery(
    sender: str,
    recipient: str,
    when: str,
    *,
    state: str = "delivered",
    previous: str = "",
    code: str = "",
    actor: str = "",
) -> events_pb2.Event:
    event = at(when)
    event.delivery_updated.CopyFrom(
        events_pb2.DeliveryUpdated(
            sender_code=sender,
            recipient_code=recipient,
            state=state,
            previous_state=previous,
            status_code=code,
            actor_code=actor,
        )
    )
    return event


def refused(sender: str, recipients: list[str], when: str) -> events_pb2.Event:
    event = at(when)
    event.refused.CopyFrom(
        events_pb2.DocumentRefused(sender_code=sender, recipient_codes=recipients, indication="TOTAL_FAILED")
    )
    return event


def exchange(sender: str, recipients: list[str], when: str) -> list[events_pb2.Event]:
    """The events of one document sent and delivered to each recipient."""
    return [verified(sender, recipients, when)] + [delivery(sender, r, when) for r in recipients]


def one_pdf_package(
    *,
    sender: str,
    recipients: list[str],
    pdf: bytes,
    subject: str,
    notation: str,
    number: int | None = None,
    sender_name: str = "",
    place: str = "Hạ Long",
) -> bytes:
    """An edXML package of one official letter (Công văn) carrying one PDF (`vanban.pdf`)."""
    return edxml.build_package(
        edxml.EdxmlPackage(
            header=edxml.MessageHeader(
                sender=edxml.Organization(organ_id=sender, organ_name=sender_name),
                recipients=[edxml.Organization(organ_id=code) for code in recipients],
                code_number=str(uuid.uuid4().int % 100000 if number is None else number),
                code_notation=notation,
                promulgation_place=place,
                promulgation_date=dt.date.today(),
                document_type=1,
                document_type_name="Công văn",
                subject=subject,
            ),
            attachments=[
                edxml.Attachment(
                    content_id="cid:1", name="vanban.pdf", content_type="application/pdf", data=pdf
                )
            ],
        )
    )
