"""XML-DSig mechanics for the one enveloped signature of an edXML package, over a Skeleton.

What the VDXP SDKs, xmlsec1 and our own signer write: ``SignedInfo`` canonicalized by C14N 1.0
(1.1 and exclusive C14N are read too), one ``Reference URI=""`` whose transforms are
``enveloped-signature`` and at most one canonicalization, an RSA (PKCS#1 v1.5 or PSS) or ECDSA
signature value. The reference digest is :meth:`Skeleton.digest` of the document without the
Signature: the whole package, long attachment bodies streamed from disk.

``URI=""`` selects the document without its comments (XML-DSig 4.4.3.2), so comments never
count, whatever canonicalization the transform names.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from ._model import DSIG_NS
from ._skeleton import Skeleton

C14N_1_0 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
# URI -> (exclusive, with comments). C14N 1.1 differs from 1.0 only for xml:id/xml:base
# fix-ups of document subsets, which an enveloped signature over a whole document never has.
CANONICALIZATIONS: dict[str, tuple[bool, bool]] = {
    C14N_1_0: (False, False),
    C14N_1_0 + "#WithComments": (False, True),
    "http://www.w3.org/2006/12/xml-c14n11": (False, False),
    "http://www.w3.org/2006/12/xml-c14n11#WithComments": (False, True),
    EXC_C14N: (True, False),
    EXC_C14N + "WithComments": (True, True),
}
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
DIGESTS: dict[str, str] = {
    SHA1: "sha1",
    "http://www.w3.org/2001/04/xmldsig-more#sha224": "sha224",
    SHA256: "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_MGF1 = "http://www.w3.org/2007/05/xmldsig-more#"
# URI -> (key kind, hash): "rsa" PKCS#1 v1.5, "pss" RSASSA-PSS with MGF1, "ecdsa".
SIGNATURE_METHODS: dict[str, tuple[str, str]] = {
    RSA_SHA1: ("rsa", "sha1"),
    **{f"{_MORE}rsa-{h}": ("rsa", h) for h in ("sha224", "sha256", "sha384", "sha512")},
    **{f"{_MORE}ecdsa-{h}": ("ecdsa", h) for h in ("sha1", "sha224", "sha256", "sha384", "sha512")},
    **{f"{_MGF1}{h}-rsa-MGF1": ("pss", h) for h in ("sha224", "sha256", "sha384", "sha512")},
}


class FormatProblem(Exception):
    """The Signature is not shaped as this platform reads it."""


class DigestMismatch(Exception):
    """The package changed after it was signed."""


class SignatureValueInvalid(Exception):
    """The signature value does not verify with the certificate's key."""


def _ds(name: str) -> str:
    return f"{{{DSIG_NS}}}{name}"


def _find(parent: Any, path: str) -> Any:
    return parent.find("/".join(_ds(part) for part in path.split("/")))


@dataclass
class SignatureTemplate:
    """A Signature element being written: its SignedInfo and the elements filled in last."""

    element: Any
    signed_info: Any
    digest_value: Any
    signature_value: Any


def signature_template(*, method: str, digest: str, certificates_pem: list[bytes]) -> SignatureTemplate:
    """``<ds:Signature>`` as signxml writes it: C14N 1.0, one Reference URI="" with the
    enveloped-signature and C14N 1.0 transforms, the certificates (signer first) in KeyInfo."""
    signature = etree.Element(_ds("Signature"), nsmap={"ds": DSIG_NS})
    signed_info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(signed_info, _ds("CanonicalizationMethod"), Algorithm=C14N_1_0)
    etree.SubElement(signed_info, _ds("SignatureMethod"), Algorithm=method)
    reference = etree.SubElement(signed_info, _ds("Reference"), URI="")
    transforms = etree.SubElement(reference, _ds("Transforms"))
    etree.SubElement(transforms, _ds("Transform"), Algorithm=ENVELOPED)
    etree.SubElement(transforms, _ds("Transform"), Algorithm=C14N_1_0)
    etree.SubElement(reference, _ds("DigestMethod"), Algorithm=digest)
    digest_value = etree.SubElement(reference, _ds("DigestValue"))
    signature_value = etree.SubElement(signature, _ds("SignatureValue"))
    data = etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data"))
    for pem in certificates_pem:
        lines = [line for line in pem.decode("ascii").strip().splitlines() if not line.startswith("-----")]
        etree.SubElement(data, _ds("X509Certificate")).text = "\n".join(lines) + "\n"
    return SignatureTemplate(signature, signed_info, digest_value, signature_value)


def sign_into(
    skeleton: Skeleton,
    root: Any,
    template: SignatureTemplate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> None:
    """Fill in the template, already placed in ``root``'s tree: the reference digest of the
    document without it, then the signature value over the canonical SignedInfo."""
    digest_uri = _find(template.signed_info, "Reference/DigestMethod").get("Algorithm")
    method_uri = _find(template.signed_info, "SignatureMethod").get("Algorithm")
    value = skeleton.digest(root, DIGESTS[digest_uri], exclude=template.element)
    template.digest_value.text = base64.b64encode(value).decode("ascii")
    signed_info_c14n: bytes = etree.tostring(template.signed_info, method="c14n", with_comments=False)
    kind, hash_name = SIGNATURE_METHODS[method_uri]
    algorithm = _HASHES[hash_name]()
    if isinstance(key, ec.EllipticCurvePrivateKey) and kind == "ecdsa":
        r, s = utils.decode_dss_signature(key.sign(signed_info_c14n, ec.ECDSA(algorithm)))
        size = (key.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")  # XML-DSig's r||s, not DER
    elif isinstance(key, rsa.RSAPrivateKey) and kind == "rsa":
        raw = key.sign(signed_info_c14n, padding.PKCS1v15(), algorithm)
    else:
        raise ValueError(f"{method_uri} does not match a {type(key).__name__}")
    template.signature_value.text = base64.b64encode(raw).decode("ascii")


def check(
    skeleton: Skeleton,
    root: Any,
    signature: Any,
    certificate: x509.Certificate,
    *,
    methods: frozenset[str],
    digests: frozenset[str],
) -> None:
    """Verify ``signature`` (an XML-DSig Signature in ``root``'s tree): the signature value over
    its canonical SignedInfo first, then the reference digest over the document without it.
    Raises FormatProblem, SignatureValueInvalid or DigestMismatch."""
    signed_info = _find(signature, "SignedInfo")
    if signed_info is None:
        raise FormatProblem("SignedInfo is missing")
    c14n = _canonicalization(_find(signed_info, "CanonicalizationMethod"), "CanonicalizationMethod")
    method_uri = _algorithm(_find(signed_info, "SignatureMethod"), "SignatureMethod")
    if method_uri not in SIGNATURE_METHODS or method_uri not in methods:
        raise FormatProblem(f"signature method {method_uri!r} is not supported")
    exclusive, with_comments, prefixes = c14n
    signed_info_c14n: bytes = etree.tostring(
        signed_info,
        method="c14n",
        exclusive=exclusive,
        with_comments=with_comments,
        inclusive_ns_prefixes=prefixes,
    )
    _verify_value(certificate, method_uri, _base64(_find(signature, "SignatureValue")), signed_info_c14n)

    references = signed_info.findall(_ds("Reference"))
    if len(references) != 1:
        raise FormatProblem(f"expected 1 Reference, found {len(references)}")
    reference = references[0]
    if reference.get("URI") != "":
        raise FormatProblem(f'Reference URI {reference.get("URI")!r} is not supported; URI="" is')
    exclusive, prefixes = False, None
    saw_enveloped = False
    for transform in reference.findall(f"{_ds('Transforms')}/{_ds('Transform')}"):
        uri = transform.get("Algorithm", "")
        if uri == ENVELOPED and not saw_enveloped:
            saw_enveloped = True
        elif uri in CANONICALIZATIONS:
            exclusive, _comments, prefixes = _canonicalization(transform, "Transform")
        else:
            raise FormatProblem(f"transform {uri!r} is not supported")
    if not saw_enveloped:
        raise FormatProblem("the Reference has no enveloped-signature transform")
    digest_uri = _algorithm(_find(reference, "DigestMethod"), "DigestMethod")
    if digest_uri not in DIGESTS or digest_uri not in digests:
        raise FormatProblem(f"digest method {digest_uri!r} is not supported")
    expected = _base64(_find(reference, "DigestValue"))
    actual = skeleton.digest(
        root, DIGESTS[digest_uri], exclude=signature, exclusive=exclusive, inclusive_ns_prefixes=prefixes
    )
    if actual != expected:
        raise DigestMismatch('digest mismatch for the Reference URI=""')


def _algorithm(element: Any, name: str) -> str:
    if element is None or not element.get("Algorithm"):
        raise FormatProblem(f"{name} is missing or has no Algorithm")
    return str(element.get("Algorithm"))


def _canonicalization(element: Any, name: str) -> tuple[bool, bool, list[str] | None]:
    uri = _algorithm(element, name)
    if uri not in CANONICALIZATIONS:
        raise FormatProblem(f"canonicalization {uri!r} is not supported")
    exclusive, with_comments = CANONICALIZATIONS[uri]
    prefixes = None
    if exclusive:
        inclusive = element.find(f"{{{EXC_C14N}}}InclusiveNamespaces")
        if inclusive is not None and inclusive.get("PrefixList"):
            prefixes = inclusive.get("PrefixList").split()
    return exclusive, with_comments, prefixes


def _base64(element: Any) -> bytes:
    if element is None:
        raise FormatProblem("SignatureValue or DigestValue is missing")
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise FormatProblem(f"{etree.QName(element).localname} is not base64: {error}") from None


def _verify_value(certificate: x509.Certificate, method_uri: str, raw: bytes, data: bytes) -> None:
    kind, hash_name = SIGNATURE_METHODS[method_uri]
    algorithm = _HASHES[hash_name]()
    key = certificate.public_key()
    try:
        if kind == "ecdsa":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise FormatProblem(f"{method_uri} needs an EC key; the certificate holds another")
            size = (key.key_size + 7) // 8
            if len(raw) != 2 * size:
                raise SignatureValueInvalid(f"expected a {2 * size}-byte SignatureValue, got {len(raw)}")
            r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
            key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(algorithm))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise FormatProblem(f"{method_uri} needs an RSA key; the certificate holds another")
            scheme: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if kind == "rsa"
                else padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            )
            key.verify(raw, data, scheme, algorithm)
    except InvalidSignature:
        raise SignatureValueInvalid("the signature value does not match SignedInfo") from None
