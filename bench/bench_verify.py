"""PAdES verification throughput: 100 KB signed PDFs per second, per core and on every core.

Measures, on documents from a dev PKI made here (ECDSA P-256 root -> issuing CA, both CRLs
served on loopback and checked: fetched once per process, then from the revocation cache), two corpora
of ~100 KB PDFs: one signed with ECDSA P-256 signer keys (what the dev PKI issues) and one
with RSA-2048 signer keys (what most national CAs still issue):

* ``one process``: PdfVerifier.verify in a loop (the service's worker does exactly this), with
  the signer's path validation cached as in service and, for comparison, with it off;
* ``N processes``: N independent workers (N = cores), the ceiling of the pool;
* ``service pool``: sigverify's VerificationEngine with N workers, verdict cache off, fed
  batches the way the consumer feeds it (includes pickling PDFs to the workers);
* the floor: what cannot be avoided, timed alone with ``cryptography``: SHA-256 over the
  signed byte ranges plus one verification of the signer's signature (ECDSA P-256 or
  RSA-2048), and the same plus the two ECDSA links of the CA chain (paid once per signer
  while its validated path is cached);
* a cProfile of the one-process loop, time grouped by where it goes (hashing, signature math,
  ASN.1 decoding, PDF parsing, path validation, revocation, CMS checks, other).

    .venv/bin/python bench/bench_verify.py [--quick]

Writes bench/results/verify.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import cProfile
import hashlib
import inspect
import json
import multiprocessing
import os
import pstats
import re
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_BYTES = 100_000
TARGET_PER_CORE = 100.0
KEY_TYPES = ("ecdsa-p256", "rsa-2048")


def make_corpus(directory: Path, count: int, crl_server: Any = None) -> tuple[bytes, dict[str, list[bytes]]]:
    """The trust root and, per signer key type, `count` distinct signed ~100 KB PDFs.

    With ``crl_server`` (a DevCrlServer) the certificates point to CRLs it serves on loopback.
    """
    from lienthong_common.pades import sign_pdf
    from lienthong_common.pdfgen import make_pdf
    from lienthong_common.pki import DevPki

    pki = DevPki.init(directory / "pki", crl_base_url=crl_server.base_url if crl_server else None)
    if crl_server is not None:
        crl_server.attach(pki)
    corpora: dict[str, list[bytes]] = {}
    for key_type in KEY_TYPES:
        signer = pki.issue_signer(
            agency_code="000.00.00.H49",
            common_name="Nguyễn Văn A",
            key_type="rsa" if key_type.startswith("rsa") else "ec",
        )
        corpora[key_type] = [
            sign_pdf(
                make_pdf(
                    f"Công văn số {i}/UBND-VP", ["Kính gửi các sở, ban, ngành."], pad_to_bytes=TARGET_BYTES
                ),
                signer,
            )
            for i in range(count)
        ]
    return pki.root_cert_pem, corpora


def _local_crls() -> Any:
    """The allow-list sigverify runs with locally (`lienthong run`): the CRLs are on loopback."""
    from lienthong_common.outbound import OutboundPolicy

    return OutboundPolicy.from_cidrs(["127.0.0.0/8"])


def _accelerate(accelerators: Any) -> None:
    """Install the PAdES accelerators as sigverify does: the figures are sigverify's own."""
    if not accelerators.install():
        raise SystemExit("PAdES accelerators refused (version mismatch): not sigverify's figures")


def verify_loop(
    root: bytes, docs: list[bytes], seconds: float, mode: str, cache_paths: bool = True
) -> tuple[int, float, float]:
    """Verify round-robin for `seconds`; returns (count, wall, CPU seconds). Runs in a worker too."""
    from lienthong_common.pades import PdfVerifier, accelerators

    _accelerate(accelerators)
    verifier = PdfVerifier([root], revocation=mode, cache_paths=cache_paths, outbound=_local_crls())  # type: ignore[arg-type]
    assert verifier.verify(docs[0]).passed  # warm-up, and a sanity check
    count = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        verdict = verifier.verify(docs[count % len(docs)])
        if not verdict.passed:
            raise SystemExit(f"benchmark document failed verification: {verdict.message}")
        count += 1
    return count, elapsed, time.process_time() - cpu_start


def parallel(
    root: bytes, docs: list[bytes], seconds: float, mode: str, processes: int
) -> tuple[float, float]:
    """(wall rate summed over workers, rate per CPU-second summed: what dedicated cores give)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        results = list(
            pool.map(
                verify_loop, [root] * processes, [docs] * processes, [seconds] * processes, [mode] * processes
            )
        )
    return sum(c / wall for c, wall, _ in results), sum(c / cpu for c, _, cpu in results)


def service_pool(root: bytes, docs: list[bytes], seconds: float, mode: str, workers: int, tmp: Path) -> float:
    sys.path.insert(0, str(ROOT / "services" / "sigverify" / "src"))
    from lienthong_sigverify.trust import TrustSnapshot
    from lienthong_sigverify.verification import VerificationEngine, VerifierConfig

    class Fixed:
        def snapshot(self, *, seed: bool = True) -> TrustSnapshot:
            return TrustSnapshot(1, (root,))

    engine = VerificationEngine(
        trust=Fixed(),
        config=VerifierConfig(mode, str(tmp / "revocation-cache"), allow_fetching=True, fetch_timeout=1.0),  # type: ignore[arg-type]
        workers=workers,
        cache_seconds=0,
    )
    try:
        engine.prefetch(docs[:workers])  # start the workers (spawn + imports) before timing
        for doc in docs[:workers]:
            engine.verify(doc)
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            batch = docs[:]  # one consumer poll's worth, all distinct documents
            engine.prefetch(batch)
            for doc in batch:
                assert engine.verify(doc).passed
            count += len(batch)
        return count / (time.perf_counter() - start)
    finally:
        engine.close()


def signed_bytes(doc: bytes) -> bytes:
    """The bytes a PAdES signature covers: the file minus its /Contents hole (the /ByteRange)."""
    found = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", doc)
    assert found is not None, "no /ByteRange in the benchmark PDF"
    a, b, c, d = (int(v) for v in found.groups())
    return doc[a : a + b] + doc[c : c + d]


def raw_costs(doc: bytes) -> dict[str, float]:
    """Microseconds per operation (CPU time) for the work that cannot be avoided."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    def per_op(func: Any, n: int) -> float:
        func()
        best = float("inf")
        for _ in range(3):  # best of three: the machine may be shared
            start = time.process_time()
            for _ in range(n):
                func()
            best = min(best, (time.process_time() - start) / n * 1e6)
        return best

    payload = signed_bytes(doc)
    message = b"signed attributes of a CMS signature" * 4
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_sig = ec_key.sign(message, ec.ECDSA(hashes.SHA256()))
    ec_pub = ec_key.public_key()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_sig = rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    rsa_pub = rsa_key.public_key()
    return {
        "signed_bytes": float(len(payload)),
        "sha256_signed_bytes_us": per_op(lambda: hashlib.sha256(payload).digest(), 1000),
        "ecdsa_p256_verify_us": per_op(
            lambda: ec_pub.verify(ec_sig, message, ec.ECDSA(hashes.SHA256())), 500
        ),
        "rsa2048_verify_us": per_op(
            lambda: rsa_pub.verify(rsa_sig, message, padding.PKCS1v15(), hashes.SHA256()), 500
        ),
    }


# ----------------------------------------------------------------------------- profile grouping

HASHING = "hashing (SHA-256 of the signed bytes; certificate and cache-key hashes)"
SIGNATURE = "signature math (ECDSA / RSA verify, public-key loading)"
ASN1 = "ASN.1 decoding (asn1crypto)"
PDF = "PDF parsing (pyhanko.pdf_utils and the accelerated tokenizers)"
PATH = "certificate path validation (pyhanko_certvalidator, path cache)"
REVOCATION = "revocation (CRL/OCSP lookup and checks)"
CMS = "CMS / PAdES checks (pyhanko.sign: fields, attributes, signer identification)"
OTHER = "other (asyncio, verdict assembly, interpreter)"
AREAS = (HASHING, SIGNATURE, ASN1, PDF, PATH, REVOCATION, CMS, OTHER)

_PADES_BY_NAME = {
    "read_hex_string_from_stream": PDF,
    "read_until_class": PDF,
    "stop_pattern": PDF,
    "decode_name": PDF,
    "byte_range_digest": HASHING,
    "cached_prep": ASN1,
    "ldap_string_prep": ASN1,
    "names_equal": ASN1,
    "rdn_sequence_eq": ASN1,
    "hashable_of": ASN1,
    "canonical": ASN1,
    "validate_cert_usage": PATH,
    "match_issuer_serial": CMS,
    "match_by_der": CMS,
    "check_ess_certid": CMS,
    "check_ess_by_der": CMS,
    "extract_certs_for_validation": CMS,
    "extract_certificate_info": CMS,
    "_collect_revinfo": REVOCATION,
    "trusted_chain": REVOCATION,
    "crl_urls": REVOCATION,
    "ocsp_urls": REVOCATION,
}


def _pades_areas() -> dict[tuple[str, int], str]:
    """(file, first line) of each function in the lienthong_common.pades package -> area
    (closures included)."""
    from lienthong_common.pades import accelerators, paths, revocation, validation

    areas: dict[tuple[str, int], str] = {}

    def walk(code: types.CodeType, area: str | None) -> None:
        chosen = area or _PADES_BY_NAME.get(code.co_name)
        if chosen is not None:
            areas[(code.co_filename.replace("\\", "/"), code.co_firstlineno)] = chosen
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const, area)

    by_class = {
        "PathCache": PATH,
        "PathScope": PATH,
        "RevinfoCollector": REVOCATION,
        "RevocationCache": REVOCATION,
        "RevocationFetcher": REVOCATION,
    }
    for module in (accelerators, paths, revocation, validation):
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                walk(value.__code__, None)
            elif inspect.isclass(value) and value.__module__ == module.__name__:
                for member in vars(value).values():
                    func = getattr(member, "__func__", member)
                    if inspect.isfunction(func):
                        walk(func.__code__, by_class.get(name))
    return areas


def _area(filename: str, line: int, name: str, pades_areas: dict[tuple[str, int], str]) -> str:
    path = filename.replace("\\", "/")
    if "asn1crypto" in path:
        return ASN1
    if "pyhanko/pdf_utils" in path:
        return PDF
    if "pyhanko_certvalidator/revinfo" in path:
        return REVOCATION
    if "pyhanko_certvalidator" in path:
        return PATH
    if "pyhanko/sign" in path:
        return CMS
    if "lienthong_common/pades/" in path:
        return pades_areas.get((path, line), OTHER)
    if path == "~":
        if "_hashlib" in name or "hashes.Hash" in name or "openssl_sha" in name:
            return HASHING
        if "'verify' of" in name or "load_der_public_key" in name or "load_der_x509" in name:
            return SIGNATURE
    return OTHER


def profile(root: bytes, docs: list[bytes], n: int, mode: str, measured_ms: float) -> dict[str, Any]:
    """cProfile self time by area; ms per document rescaled to the unprofiled CPU time."""
    from lienthong_common.pades import PdfVerifier, accelerators

    _accelerate(accelerators)
    verifier = PdfVerifier([root], revocation=mode, outbound=_local_crls())  # type: ignore[arg-type]
    verifier.verify(docs[0])
    pades_areas = _pades_areas()
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        verifier.verify(docs[i % len(docs)])
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    groups: dict[str, float] = dict.fromkeys(AREAS, 0.0)
    top: list[tuple[float, str]] = []
    for (filename, line, name), (_cc, _nc, tottime, _cum, callers) in stats.stats.items():  # type: ignore[attr-defined]
        area = _area(filename, line, name, pades_areas)
        if area is OTHER and filename == "~" and callers:
            # A builtin (isinstance, BytesIO.read, a regex...) works for whoever called it:
            # split its time over its callers' areas, as cProfile recorded it per caller.
            for (c_file, c_line, c_name), (_ncc, _ccc, c_tt, _cct) in callers.items():
                groups[_area(c_file, c_line, c_name, pades_areas)] += c_tt
        else:
            groups[area] += tottime
        top.append((tottime, f"{Path(filename).name}:{line} {name}"))
    top.sort(reverse=True)
    ordered = sorted(groups.items(), key=lambda kv: -kv[1])
    return {
        "documents": n,
        "profiled_ms_per_document": round(total / n * 1000, 3),
        "share_by_area": {k: round(v / total, 3) for k, v in ordered},
        # cProfile slows Python code more than C code, so these are approximate: the measured
        # (unprofiled) CPU time per document split by the profiled shares.
        "ms_per_document_by_area": {k: round(v / total * measured_ms, 3) for k, v in ordered},
        "top_functions_self_time_ms_per_document": {name: round(t / n * 1000, 3) for t, name in top[:12]},
    }


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of a minute")
    parser.add_argument("--revocation", default="soft-fail", choices=["off", "soft-fail", "hard-fail"])
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 10.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    mode = args.revocation
    loads = [os.getloadavg()[0]]

    from lienthong_common.pki import DevCrlServer

    with tempfile.TemporaryDirectory() as folder, DevCrlServer() as crl_server:
        tmp = Path(folder)
        started = time.perf_counter()
        root, corpora = make_corpus(tmp, 8 if args.quick else 32, crl_server)
        corpus_seconds = time.perf_counter() - started
        raw = raw_costs(corpora["ecdsa-p256"][0])
        sets: dict[str, dict[str, Any]] = {}
        for key_type in KEY_TYPES:
            docs = corpora[key_type]
            count, elapsed, cpu = verify_loop(root, docs, seconds, mode)
            uncached = verify_loop(root, docs, seconds / 2, mode, cache_paths=False)
            many_wall, many = parallel(root, docs, seconds, mode, cores)
            loads.append(os.getloadavg()[0])
            one = count / cpu
            signer_us = (
                raw["ecdsa_p256_verify_us"] if key_type.startswith("ecdsa") else raw["rsa2048_verify_us"]
            )
            floor_ms = (raw["sha256_signed_bytes_us"] + signer_us) / 1000
            cold_floor_ms = floor_ms + 2 * raw["ecdsa_p256_verify_us"] / 1000
            per_doc_ms = 1000 / one
            sets[key_type] = {
                "document_bytes": {"min": min(map(len, docs)), "max": max(map(len, docs))},
                "verifications_per_second": {
                    "one_process_per_cpu_second": round(one, 1),
                    f"{cores}_processes_per_cpu_second": round(many, 1),
                    "one_process_wall": round(count / elapsed, 1),
                    f"{cores}_processes_wall": round(many_wall, 1),
                    "one_process_path_cache_off_per_cpu_second": round(uncached[0] / uncached[2], 1),
                },
                "per_core": round(many / cores, 1),
                "ms_per_verification_one_process": round(per_doc_ms, 3),
                "floor": {
                    "what": f"SHA-256 over the signed bytes + one {key_type} verify of the signature",
                    "ms": round(floor_ms, 3),
                    "share_of_measured": round(floor_ms / per_doc_ms, 3),
                    "measured_over_floor": round(per_doc_ms / floor_ms, 1),
                    "with_ca_links_ms": round(cold_floor_ms, 3),
                    "with_ca_links_what": "the same + the 2 ECDSA links of the CA chain "
                    "(paid once per signer while its validated path is cached)",
                },
                "profile": profile(root, docs, 30 if args.quick else 200, mode, per_doc_ms),
            }
        pool = service_pool(root, corpora["ecdsa-p256"], seconds, mode, cores, tmp)
        loads.append(os.getloadavg()[0])

    main_set = sets["ecdsa-p256"]
    rates = main_set["verifications_per_second"]
    result = {
        "benchmark": "verify",
        "document_bytes": main_set["document_bytes"],
        "revocation": mode,
        "revocation_data": "CRLs of the issuing CA and the root, served on loopback, cached per process",
        "cores": cores,
        "load_average_1min": round(max(loads), 2),
        "load_average_1min_samples": [round(v, 2) for v in loads],
        "seconds_per_measurement": seconds,
        # The headline figures are for the dev PKI's ECDSA P-256 signers; "signers" has both.
        # Rates per CPU-second are what a dedicated core delivers; wall-clock rates also carry
        # whatever else the machine was doing (see load_average_1min).
        "verifications_per_second": {**rates, f"service_pool_{cores}_workers_wall": round(pool, 1)},
        "per_core": main_set["per_core"],
        "target_per_core": TARGET_PER_CORE,
        "meets_target": min(s["per_core"] for s in sets.values()) >= TARGET_PER_CORE,
        "ms_per_verification_one_process": main_set["ms_per_verification_one_process"],
        "raw_costs": {k: round(v, 2) for k, v in raw.items()},
        "irreducible_ms_per_document": main_set["floor"],
        "signers": sets,
        "profile": main_set["profile"],
        "corpus_build_seconds": round(corpus_seconds, 2),
    }
    out = ROOT / "bench" / "results" / "verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")

    print(f"PAdES verification, ~100 KB signed PDFs, revocation {mode}, {cores} core(s)")
    print(
        f"  raw: SHA-256 over {raw['signed_bytes']:.0f} signed bytes {raw['sha256_signed_bytes_us']:.0f} µs,"
        f" ECDSA P-256 verify {raw['ecdsa_p256_verify_us']:.0f} µs,"
        f" RSA-2048 verify {raw['rsa2048_verify_us']:.0f} µs"
    )
    for key_type, data in sets.items():
        r = data["verifications_per_second"]
        floor = data["floor"]
        print(f"  signer {key_type}:{'per CPU-s':>14}{'wall':>10}")
        print(
            f"    one process         {r['one_process_per_cpu_second']:10.1f}{r['one_process_wall']:10.1f} /s"
            f"  ({data['ms_per_verification_one_process']:.2f} ms CPU each)"
        )
        print(
            f"    {cores} processes         {r[f'{cores}_processes_per_cpu_second']:10.1f}"
            f"{r[f'{cores}_processes_wall']:10.1f} /s  -> {data['per_core']:.1f}/core "
            f"(target {TARGET_PER_CORE:.0f}/core)"
        )
        print(f"    path cache off      {r['one_process_path_cache_off_per_cpu_second']:10.1f}{'':>10} /s")
        print(
            f"    floor (hash + signer verify) {floor['ms']:.3f} ms = {floor['share_of_measured']:.0%} of "
            f"measured, measured is {floor['measured_over_floor']}x it; "
            f"with the CA links {floor['with_ca_links_ms']:.3f} ms"
        )
        print("    where the time goes (one process, cProfile self time):")
        prof = data["profile"]
        for area, share in prof["share_by_area"].items():
            print(f"      {share:6.1%}  {prof['ms_per_document_by_area'][area]:6.2f} ms  {area}")
    print(f"  service pool ({cores} workers, ECDSA set, VerificationEngine, cache off): {pool:.1f} /s wall")
    print(
        f"  load average (1 min) during the run: {', '.join(f'{v:.1f}' for v in loads)}; "
        f"written {out.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
