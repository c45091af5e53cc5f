"""Coverage-guided fuzzing (atheris) of the edXML readers and the PDF verifier's front end.

    .venv/bin/python fuzz/atheris_fuzz.py edxml|status|pdf [-max_total_time=60] [libFuzzer flags]

The seeds of corpus.py start the search. A finding is any exception other than EdxmlError
(edxml, status) or any exception at all (pdf: the verifier must always answer with a verdict);
libFuzzer writes the crashing input to crash-<sha1> in the current directory.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports():
    from lienthong_common import edxml
    from lienthong_common.edxml import package as _package  # noqa: F401 - instrumented
    from lienthong_common.edxml import status as _status  # noqa: F401 - instrumented

from corpus import seeds


def fuzz_edxml(data: bytes) -> None:
    try:
        edxml.parse_package(data)
    except edxml.EdxmlError:
        pass


def fuzz_status(data: bytes) -> None:
    try:
        edxml.parse_status_package(data)
    except edxml.EdxmlError:
        pass


def pdf_target() -> tuple[object, list[bytes]]:
    from lienthong_common.pades import PdfVerifier, accelerators, sign_pdf
    from lienthong_common.pdfgen import make_pdf
    from lienthong_common.pki import DevPki

    accelerators.install()  # fuzz the verifier as sigverify runs it
    pki = DevPki.init(Path(tempfile.mkdtemp(prefix="fuzz-pki-")))
    identity = pki.issue_signer(agency_code="000.00.00.H49", common_name="UBND tỉnh Quảng Ninh")
    signed = sign_pdf(make_pdf("Công văn", ["Kính gửi."]), identity)
    return PdfVerifier([pki.root_cert_pem], revocation="off"), [signed]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("edxml", "status", "pdf"):
        raise SystemExit(__doc__)
    target = sys.argv.pop(1)
    corpus_dir = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    if target == "pdf":
        # pyHanko's PDF reader is where hostile bytes are parsed: instrument it (only it).
        with atheris.instrument_imports(include=["pyhanko.pdf_utils", "lienthong_common.pades"]):
            verifier, initial = pdf_target()

        def fuzz_pdf(data: bytes) -> None:
            verdict = verifier.verify(data)  # type: ignore[attr-defined]
            assert verdict.indication in {"TOTAL_PASSED", "TOTAL_FAILED", "INDETERMINATE"}

        test = fuzz_pdf
    else:
        initial = seeds()
        test = fuzz_edxml if target == "edxml" else fuzz_status
    for n, seed in enumerate(initial):
        (corpus_dir / f"seed-{n}").write_bytes(seed)
    atheris.Setup([sys.argv[0], str(corpus_dir), "-max_len=262144", "-timeout=10", *sys.argv[1:]], test)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
