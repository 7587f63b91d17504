"""Test files that carry provenance metadata, built in memory.

PNG chunks are written by hand (so tests can make any chunk, including broken and
hostile ones); JPEG/WebP EXIF and XMP through Pillow; Content Credentials through
c2pa-python's Builder, signed by a throwaway ES256 certificate chain made here with
``cryptography`` (c2pa-rs does not sign with a self-signed leaf certificate, so the
chain is a test root CA and a leaf it issued). Prompts are benign.
"""

from __future__ import annotations

import datetime
import io
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from PIL import Image

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
PARENT_LABEL = "parent-1"

A1111_PARAMETERS = (
    "a watercolor painting of a lighthouse at dawn, soft light\n"
    "Negative prompt: blurry, low quality\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, "
    "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"
)
# words of the prompt above that must never appear in an alert
PROMPT_WORDS = ("lighthouse", "watercolor", "blurry")

COMFYUI_PROMPT = (
    '{"3": {"inputs": {"seed": 42, "steps": 20, "cfg": 8, "sampler_name": "euler", '
    '"model": ["4", 0], "positive": ["6", 0]}, "class_type": "KSampler"}, '
    '"4": {"inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}, '
    '"class_type": "CheckpointLoaderSimple"}, '
    '"6": {"inputs": {"text": "a watercolor painting of a lighthouse", "clip": ["4", 1]}, '
    '"class_type": "CLIPTextEncode"}}'
)
COMFYUI_WORKFLOW = (
    '{"last_node_id": 9, "last_link_id": 9, "nodes": [{"id": 3, "type": "KSampler", '
    '"widgets_values": [42, "fixed", 20, 8, "euler", "normal", 1]}], "links": [], "version": 0.4}'
)


# --- pixels ------------------------------------------------------------------------------


def small_image(size: tuple[int, int] = (48, 32)) -> Image.Image:
    """A plain gradient picture."""
    w, h = size
    im = Image.new("RGB", size)
    im.putdata([(x * 255 // w, y * 255 // h, 128) for y in range(h) for x in range(w)])
    return im


# --- PNG -----------------------------------------------------------------------------------


def png_chunk(ctype: bytes, body: bytes, *, length: int | None = None) -> bytes:
    """One chunk; ``length`` overrides the declared length (for broken files)."""
    declared = len(body) if length is None else length
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", declared) + ctype + body + struct.pack(">I", crc)


def text_chunk(kind: str, key: str, value: str | bytes) -> bytes:
    """A tEXt, zTXt, iTXt (uncompressed) or iTXt-z (compressed) chunk."""
    k = key.encode("latin-1")
    if kind == "tEXt":
        v = value if isinstance(value, bytes) else value.encode("latin-1")
        return png_chunk(b"tEXt", k + b"\x00" + v)
    if kind == "zTXt":
        v = value if isinstance(value, bytes) else value.encode("latin-1")
        return png_chunk(b"zTXt", k + b"\x00\x00" + zlib.compress(v))
    v = value if isinstance(value, bytes) else value.encode("utf-8")
    if kind == "iTXt":
        return png_chunk(b"iTXt", k + b"\x00\x00\x00" + b"\x00" + b"\x00" + v)
    if kind == "iTXt-z":
        return png_chunk(b"iTXt", k + b"\x00\x01\x00" + b"\x00" + b"\x00" + zlib.compress(v))
    raise ValueError(f"unknown text chunk kind {kind!r}")


def png_with_chunks(chunks: Iterable[bytes], *, after_idat: Iterable[bytes] = ()) -> bytes:
    """A valid small PNG with extra chunks placed before (and optionally after) IDAT."""
    buf = io.BytesIO()
    small_image().save(buf, "PNG")
    plain = buf.getvalue()
    idat = plain.index(b"IDAT") - 4  # start of the first IDAT chunk
    iend = plain.index(b"IEND") - 4
    return plain[:idat] + b"".join(chunks) + plain[idat:iend] + b"".join(after_idat) + plain[iend:]


def png_with_text(items: Mapping[str, str], kind: str = "tEXt") -> bytes:
    return png_with_chunks(text_chunk(kind, k, v) for k, v in items.items())


def png_with_xmp(xmp: bytes) -> bytes:
    return png_with_chunks([text_chunk("iTXt", "XML:com.adobe.xmp", xmp)])


# --- EXIF and XMP ------------------------------------------------------------------------


def exif(ifd0: Mapping[int, str] | None = None, *, user_comment: bytes | None = None) -> Image.Exif:
    """An EXIF block: IFD0 tags (e.g. 0x0131 Software) and an Exif-IFD UserComment."""
    ex = Image.Exif()
    for tag, value in (ifd0 or {}).items():
        ex[tag] = value
    if user_comment is not None:
        ex.get_ifd(0x8769)[0x9286] = user_comment
    return ex


def user_comment_unicode(text: str, byteorder: str = "be") -> bytes:
    return b"UNICODE\x00" + text.encode("utf-16-be" if byteorder == "be" else "utf-16-le")


def user_comment_ascii(text: str) -> bytes:
    return b"ASCII\x00\x00\x00" + text.encode("ascii")


def xmp_packet(attributes: Mapping[str, str] = (), elements: str = "") -> bytes:
    """An XMP packet with the usual namespaces; ``attributes`` are qualified names."""
    attrs = " ".join(f'{name}="{value}"' for name, value in dict(attributes).items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f"    {attrs}>\n"
        f"   {elements}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def encoded(
    fmt: str, *, exif: Image.Exif | None = None, xmp: bytes | None = None, image: Image.Image | None = None
) -> bytes:
    """The picture as JPEG / WEBP / TIFF / PNG with the given EXIF and XMP (via Pillow)."""
    im = image or small_image()
    kwargs: dict[str, Any] = {}
    if exif is not None:
        kwargs["exif"] = exif
    if xmp is not None:
        kwargs["xmp"] = xmp
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


# --- Content Credentials (C2PA) ---------------------------------------------------------


@dataclass(frozen=True)
class SigningChain:
    """An ES256 signer: leaf + root chain and the leaf's key, as PEM text."""

    chain_pem: str
    key_pem: str
    root_pem: str


@cache
def signing_chain(common_name: str = "Vigil test signer") -> SigningChain:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigil tests"),
            ]
        )

    def usage(**on: bool) -> x509.KeyUsage:
        flags = dict.fromkeys(
            (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        return x509.KeyUsage(**{**flags, **on})

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(name("Vigil test root CA"))
        .issuer_name(name("Vigil test root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return SigningChain(chain_pem=pem(leaf) + pem(root), key_pem=key_pem, root_pem=pem(root))


def c2pa_manifest(
    source_type: str,
    *,
    action: str = "c2pa.created",
    claim_generator: str = "Vigil test generator",
    software_agent: str | None = "Imaginary Diffusion 1.0",
    parent: bool = False,
) -> dict[str, Any]:
    """A manifest definition with one action carrying ``source_type`` (an IPTC term).

    ``parent``: the action acts on the ingredient ``c2pa_signed(ingredient=...)`` adds.
    """
    act: dict[str, Any] = {"action": action, "digitalSourceType": IPTC + source_type}
    if parent:
        act["parameters"] = {"ingredientIds": [PARENT_LABEL]}
    if software_agent:
        act["softwareAgent"] = {"name": software_agent}
    return {
        "claim_generator_info": [{"name": claim_generator, "version": "1.0"}],
        "title": "picture",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [act]}}],
    }


def c2pa_signed(
    asset: bytes,
    manifest: Mapping[str, Any],
    mime: str = "image/jpeg",
    *,
    ingredient: bytes | None = None,
    remote_url: str | None = None,
    signer: SigningChain | None = None,
) -> bytes:
    """``asset`` with Content Credentials embedded (or, with ``remote_url``, referenced).

    ``ingredient``: a parent file (with its own credentials) added as the parent ingredient.
    """
    import c2pa

    s = signer or signing_chain()
    with (
        c2pa.Signer.from_info(
            c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, s.chain_pem.encode(), s.key_pem.encode(), None)
        ) as c2pa_signer,
        c2pa.Builder(dict(manifest)) as builder,
    ):
        if ingredient is not None:
            builder.add_ingredient(
                {"title": "parent", "relationship": "parentOf", "label": PARENT_LABEL}, mime, io.BytesIO(ingredient)
            )
        if remote_url is not None:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        out = io.BytesIO()
        builder.sign(c2pa_signer, mime, io.BytesIO(asset), out)
        return out.getvalue()
