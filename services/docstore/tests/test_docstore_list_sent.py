"""ListSentDocuments: a sender's documents, oldest first, cursor-paged (VDXP getSentEdocList)."""

from __future__ import annotations

import grpc
import pytest
from docstore_factories import SENDER, make_package, put_requests

from lienthong.docstore.v1 import docstore_pb2, docstore_pb2_grpc

Stub = docstore_pb2_grpc.DocumentStoreStub
OTHER_SENDER = "000.00.24.H44"


def test_pages_cover_every_sent_document_once_in_order(stub: Stub) -> None:
    stored = [
        stub.PutPackage(put_requests(make_package(code_number=str(7000 + n)))).document.id for n in range(5)
    ]
    stub.PutPackage(
        put_requests(
            make_package(sender=OTHER_SENDER, recipients=[SENDER]),
            sender=OTHER_SENDER,
            recipients=[SENDER],
        )
    )

    seen: list[str] = []
    cursor = ""
    while True:
        page = stub.ListSentDocuments(
            docstore_pb2.ListSentRequest(sender_code=SENDER, cursor=cursor, limit=2)
        )
        seen += [d.id for d in page.documents]
        assert all(d.sender_code == SENDER for d in page.documents)
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == stored


def test_bad_arguments_are_invalid(stub: Stub) -> None:
    for request in (
        docstore_pb2.ListSentRequest(),
        docstore_pb2.ListSentRequest(sender_code=SENDER, limit=501),
        docstore_pb2.ListSentRequest(sender_code=SENDER, cursor="not-a-cursor"),
    ):
        with pytest.raises(grpc.RpcError) as info:
            stub.ListSentDocuments(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
