"""detectors.provenance: evidence of generative models in C2PA, XMP, EXIF and PNG text."""

from __future__ import annotations

import html
import http.server
import io
import logging
import threading
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from detectors.errors import SettingError
from detectors.provenance import (
    GENERATIVE_SOURCE_TYPES,
    MAX_TEXT_BYTES,
    MAX_TEXT_CHUNKS,
    ProvenanceFinding,
    ProvenanceScanner,
    load_catalog,
)
from tests.support import provenance_files as pf

IMAGES = Path(__file__).resolve().parent / "images"
SOFTWARE, MAKE, MODEL, DESCRIPTION, ARTIST = 0x0131, 0x010F, 0x0110, 0x010E, 0x013B


@pytest.fixture(scope="module")
def scanner() -> ProvenanceScanner:
    return ProvenanceScanner()


@pytest.fixture(scope="module")
def ai_jpeg() -> bytes:
    """A JPEG whose Content Credentials say a generative model made it."""
    return pf.c2pa_signed(pf.encoded("JPEG"), pf.c2pa_manifest("trainedAlgorithmicMedia"))


def signals(findings: tuple[ProvenanceFinding, ...]) -> set[tuple[str, str, str | None]]:
    return {(f.source, f.signal, f.generator) for f in findings}


def assert_no_prompt(findings: tuple[ProvenanceFinding, ...]) -> None:
    for f in findings:
        for word in pf.PROMPT_WORDS:
            assert word not in f.detail.lower() and word not in (f.generator or "").lower()


# --- PNG text chunks ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt", "iTXt-z"])
def test_png_parameters_chunk_of_any_kind_names_automatic1111(scanner, kind):
    found = scanner.scan(pf.png_with_text({"parameters": pf.A1111_PARAMETERS}, kind))
    assert signals(found) == {("png-text", "png-text=parameters", "Stable Diffusion web UI (AUTOMATIC1111)")}
    assert "parameters" in found[0].detail
    assert_no_prompt(found)


def test_png_comfyui_prompt_and_workflow(scanner):
    found = scanner.scan(pf.png_with_text({"prompt": pf.COMFYUI_PROMPT, "workflow": pf.COMFYUI_WORKFLOW}))
    assert signals(found) == {
        ("png-text", "png-text=prompt", "ComfyUI"),
        ("png-text", "png-text=workflow", "ComfyUI"),
    }
    # the graph names a checkpoint and holds a prompt: neither is searched nor shown
    assert_no_prompt(found)


def test_png_text_after_idat_is_read(scanner):
    data = pf.png_with_chunks([], after_idat=[pf.text_chunk("tEXt", "prompt", pf.COMFYUI_PROMPT)])
    assert signals(scanner.scan(data)) == {("png-text", "png-text=prompt", "ComfyUI")}


def test_png_invokeai_and_novelai(scanner):
    invoke = scanner.scan(pf.png_with_text({"invokeai_metadata": '{"positive_prompt": "a lighthouse"}'}))
    assert signals(invoke) == {("png-text", "png-text=invokeai_metadata", "InvokeAI")}
    novel = scanner.scan(pf.png_with_text({"Software": "NovelAI", "Source": "NovelAI Diffusion V4 4F6C2A1B"}))
    assert ("png-text", "generator=NovelAI", "NovelAI") in signals(novel)
    assert "PNG text 'Software' names NovelAI" in {f.detail.split(",")[0] for f in novel}


def test_png_keyword_that_other_software_uses_needs_the_generators_content(scanner):
    # "prompt" and "parameters" alone are not evidence: the value must look like the tool's
    data = pf.png_with_text({"prompt": "Say cheese!", "parameters": "exposure=+0.3; crop=4:3"})
    assert scanner.scan(data) == ()


def test_china_aigc_label_in_png_text_and_xmp(scanner):
    label = '{"Label": "1", "ContentProducer": "001191"}'
    found = scanner.scan(pf.png_with_text({"AIGC": label}))
    assert signals(found) == {("png-text", "aigc-label", None)}
    xmp = pf.xmp_packet({"TC260:AIGC": html.escape(label)})
    assert signals(scanner.scan(pf.encoded("JPEG", xmp=xmp))) == {("xmp", "aigc-label", None)}
    # a namespace prefix called AIGC is not a label
    prefix_only = pf.xmp_packet({"xmlns:AIGC": "http://example.org/ns/aigc/"})
    assert scanner.scan(pf.encoded("JPEG", xmp=prefix_only)) == ()


# --- EXIF ---------------------------------------------------------------------------------


def test_jpeg_exif_software_adobe_firefly(scanner):
    found = scanner.scan(pf.encoded("JPEG", exif=pf.exif({SOFTWARE: "Adobe Firefly"})))
    assert signals(found) == {("exif", "generator=Adobe Firefly", "Adobe Firefly")}
    assert found[0].detail.startswith("EXIF Software names Adobe Firefly")


@pytest.mark.parametrize(
    "comment",
    [
        pf.user_comment_unicode(pf.A1111_PARAMETERS, "be"),
        pf.user_comment_unicode(pf.A1111_PARAMETERS, "le"),
        pf.user_comment_ascii(pf.A1111_PARAMETERS),
    ],
    ids=["unicode-be", "unicode-le", "ascii"],
)
def test_jpeg_user_comment_with_generation_settings(scanner, comment):
    found = scanner.scan(pf.encoded("JPEG", exif=pf.exif(user_comment=comment)))
    assert signals(found) == {("exif", "generation-settings", "Stable Diffusion web UI (AUTOMATIC1111)")}
    assert "EXIF UserComment" in found[0].detail
    assert_no_prompt(found)


def test_webp_and_tiff_exif(scanner):
    for fmt in ("WEBP", "TIFF"):
        found = scanner.scan(pf.encoded(fmt, exif=pf.exif({SOFTWARE: "Midjourney"})))
        assert signals(found) == {("exif", "generator=Midjourney", "Midjourney")}, fmt


def test_png_exif_chunk(scanner):
    data = pf.encoded("PNG", exif=pf.exif({MODEL: "ComfyUI"}))
    assert signals(scanner.scan(data)) == {("exif", "generator=ComfyUI", "ComfyUI")}


def test_nudify_app_is_named_as_such(scanner):
    found = scanner.scan(pf.encoded("JPEG", exif=pf.exif({SOFTWARE: "ClothOff 2.1"})))
    assert signals(found) == {("exif", "generator=ClothOff", "ClothOff")}
    assert "nudify" in found[0].detail


def test_names_match_as_whole_words_only(scanner):
    def named(text: str) -> set[str | None]:
        return {f.generator for f in scanner.scan(pf.encoded("JPEG", exif=pf.exif({DESCRIPTION: text})))}

    assert named("ComfyUI_00042_.png") == {"ComfyUI"}  # "_" separates words in file names
    assert named("stable_diffusion render") == {"Stable Diffusion"}
    assert named("made with DALL-E 3") == {"OpenAI (DALL·E, ChatGPT images)"}
    assert named("DALL-E mini") == {"Craiyon"}  # the longer name wins
    assert named("xMidjourneyx") == set()
    assert named("midjourneys3") == set()


# --- XMP ------------------------------------------------------------------------------


@pytest.mark.parametrize("term", sorted(GENERATIVE_SOURCE_TYPES))
def test_xmp_digital_source_types_that_count(scanner, term):
    xmp = pf.xmp_packet({"Iptc4xmpExt:DigitalSourceType": pf.IPTC + term})
    found = scanner.scan(pf.encoded("JPEG", xmp=xmp))
    assert signals(found) == {("xmp", f"digitalSourceType={term}", None)}
    assert GENERATIVE_SOURCE_TYPES[term] in found[0].detail


@pytest.mark.parametrize(
    "term",
    [
        "digitalCapture",
        "algorithmicallyEnhanced",
        "computationalCapture",
        "compositeCapture",
        "digitalCreation",
        "dataDrivenMedia",
        "humanEdits",
    ],
)
def test_xmp_digital_source_types_that_do_not_count(scanner, term):
    xmp = pf.xmp_packet({"Iptc4xmpExt:DigitalSourceType": pf.IPTC + term})
    assert scanner.scan(pf.encoded("JPEG", xmp=xmp)) == ()


def test_xmp_in_element_forms_png_and_webp(scanner):
    as_resource = pf.xmp_packet(
        elements=f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{pf.IPTC}trainedAlgorithmicMedia"/>'
    )
    as_text = pf.xmp_packet(
        elements="<Iptc4xmpExt:DigitalSourceType>trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"
    )
    other_prefix = (  # single quotes and a prefix other than Iptc4xmpExt
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b"<rdf:Description xmlns:ext='http://iptc.org/std/Iptc4xmpExt/2008-02-29/' "
        b"ext:DigitalSourceType='http://cv.iptc.org/newscodes/digitalsourcetype/"
        b"compositeWithTrainedAlgorithmicMedia'/></rdf:RDF></x:xmpmeta>"
    )
    cases = {
        "png resource": (pf.png_with_xmp(as_resource), "trainedAlgorithmicMedia"),
        "png text": (pf.png_with_xmp(as_text), "trainedAlgorithmicMedia"),
        "webp": (pf.encoded("WEBP", xmp=as_text), "trainedAlgorithmicMedia"),
        "prefix": (pf.encoded("JPEG", xmp=other_prefix), "compositeWithTrainedAlgorithmicMedia"),
    }
    for name, (data, term) in cases.items():
        assert signals(scanner.scan(data)) == {("xmp", f"digitalSourceType={term}", None)}, name


def test_xmp_creator_tool_credit_and_ai_system(scanner):
    xmp = pf.xmp_packet(
        {"xmp:CreatorTool": "Draw Things", "photoshop:Credit": "Made with Google Imagen, DALL·E"},
        elements=(
            "<Iptc4xmpExt:AISystemUsed>Leonardo AI Phoenix</Iptc4xmpExt:AISystemUsed>"
            '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">SwarmUI render</rdf:li></rdf:Alt></dc:description>'
        ),
    )
    found = signals(scanner.scan(pf.encoded("JPEG", xmp=xmp)))
    assert found == {
        ("xmp", "generator=Draw Things", "Draw Things"),
        ("xmp", "generator=Google Imagen", "Google Imagen"),
        ("xmp", "generator=OpenAI (DALL·E, ChatGPT images)", "OpenAI (DALL·E, ChatGPT images)"),
        ("xmp", "aiSystemUsed", "Leonardo.Ai"),
        ("xmp", "generator=SwarmUI", "SwarmUI"),
    }


# --- Content Credentials (C2PA) ---------------------------------------------------------


def test_c2pa_generative_source_type_with_tool_signer_and_state(scanner, ai_jpeg):
    found = scanner.scan(ai_jpeg)
    assert signals(found) == {("c2pa", "digitalSourceType=trainedAlgorithmicMedia", "Imaginary Diffusion 1.0")}
    detail = found[0].detail
    assert "made by a generative AI model" in detail
    assert "Vigil test generator" in detail and "Vigil test signer" in detail
    assert "not on a trust list" in detail


def test_c2pa_trusted_when_the_operator_trusts_the_root(ai_jpeg):
    trusting = ProvenanceScanner(trust_anchors=pf.signing_chain().root_pem)
    (finding,) = trusting.scan(ai_jpeg)
    assert "signer trusted" in finding.detail and "not on a trust list" not in finding.detail


def test_c2pa_altered_after_signing_is_still_reported_with_its_state(scanner, ai_jpeg):
    altered = bytearray(ai_jpeg)
    altered[-200] ^= 0xFF  # inside the compressed pixels, after the manifest
    found = scanner.scan(bytes(altered))
    assert signals(found) == {("c2pa", "digitalSourceType=trainedAlgorithmicMedia", "Imaginary Diffusion 1.0")}
    assert "validation failed" in found[0].detail and "assertion.dataHash.mismatch" in found[0].detail


def test_c2pa_generated_ingredient_of_an_edit_is_found(scanner, ai_jpeg):
    edit = pf.c2pa_signed(
        pf.encoded("JPEG"),
        pf.c2pa_manifest("digitalCapture", action="c2pa.opened", software_agent="Photo editor", parent=True),
        ingredient=ai_jpeg,
    )
    (finding,) = scanner.scan(edit)
    assert finding.signal == "digitalSourceType=trainedAlgorithmicMedia"
    assert finding.detail.startswith("an earlier version's Content Credentials")


def test_c2pa_in_png_composite_with_known_tool(scanner):
    data = pf.c2pa_signed(
        pf.encoded("PNG"),
        pf.c2pa_manifest("compositeWithTrainedAlgorithmicMedia", software_agent="Adobe Firefly Image 3"),
        "image/png",
    )
    assert signals(scanner.scan(data)) == {
        ("c2pa", "digitalSourceType=compositeWithTrainedAlgorithmicMedia", "Adobe Firefly")
    }


def test_c2pa_camera_capture_is_no_finding_but_a_generator_claim_is(scanner):
    camera = pf.c2pa_signed(
        pf.encoded("JPEG"), pf.c2pa_manifest("digitalCapture", software_agent=None, claim_generator="Camera firmware")
    )
    assert scanner.scan(camera) == ()
    claimed = pf.c2pa_signed(
        pf.encoded("JPEG"), pf.c2pa_manifest("digitalCapture", software_agent=None, claim_generator="ChatGPT")
    )
    assert signals(scanner.scan(claimed)) == {
        ("c2pa", "generator=OpenAI (DALL·E, ChatGPT images)", "OpenAI (DALL·E, ChatGPT images)")
    }


def test_c2pa_known_tool_as_software_agent_without_a_source_type(scanner):
    camera = pf.c2pa_signed(pf.encoded("JPEG"), pf.c2pa_manifest("digitalCapture", software_agent=None))
    manifest = pf.c2pa_manifest(
        "digitalCapture",
        action="c2pa.opened",
        software_agent="Adobe Firefly",
        claim_generator="Photo editor",
        parent=True,
    )
    del manifest["assertions"][0]["data"]["actions"][0]["digitalSourceType"]
    data = pf.c2pa_signed(pf.encoded("JPEG"), manifest, ingredient=camera)
    assert signals(scanner.scan(data)) == {("c2pa", "generator=Adobe Firefly", "Adobe Firefly")}


def test_c2pa_off_reads_only_the_other_metadata(ai_jpeg):
    assert ProvenanceScanner(c2pa=False).scan(ai_jpeg) == ()


def test_c2pa_library_error_is_a_warning_not_a_crash(scanner, ai_jpeg, caplog):
    with caplog.at_level(logging.WARNING, logger="detectors.provenance"):
        assert scanner.scan(ai_jpeg[: len(ai_jpeg) // 2]) == ()
    assert any("Content Credentials (C2PA) could not be read" in r.message for r in caplog.records)


class _Recorder(http.server.BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).paths.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_remote_manifest_is_never_fetched(scanner):
    import c2pa

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/manifest.c2pa"
        data = pf.c2pa_signed(pf.encoded("JPEG"), pf.c2pa_manifest("trainedAlgorithmicMedia"), remote_url=url)
        _Recorder.paths.clear()
        assert scanner.scan(data) == ()
        assert _Recorder.paths == []
        # the library's default would have fetched it: this test can fail
        with pytest.raises(c2pa.C2paError):
            c2pa.Reader("image/jpeg", io.BytesIO(data))
        assert _Recorder.paths == ["/manifest.c2pa"]
    finally:
        server.shutdown()
        server.server_close()


def test_concurrent_scans_agree(scanner, ai_jpeg):
    files = [ai_jpeg, pf.png_with_text({"parameters": pf.A1111_PARAMETERS}), pf.encoded("JPEG")] * 8
    expected = [scanner.scan(f) for f in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(scanner.scan, files)) == expected
    assert expected[0] and expected[1] and not expected[2]


# --- benign files ---------------------------------------------------------------------


def test_benign_camera_and_editor_metadata_give_nothing(scanner):
    phone = pf.exif(
        {
            MAKE: "Google",
            MODEL: "Pixel 8",
            SOFTWARE: "HDR+ 1.0.641377693zd",
            DESCRIPTION: "Imagen de la excursión al museo: cuadro de Kandinsky y Leonardo da Vinci",
            ARTIST: "Leonardo García",
        },
        user_comment=pf.user_comment_ascii("firefly lights at the summer camp, Gemini group"),
    )
    gimp_xmp = pf.xmp_packet(
        {"xmp:CreatorTool": "GIMP 2.10", "Iptc4xmpExt:DigitalSourceType": pf.IPTC + "digitalCapture"}
    )
    benign = {
        "phone jpeg": pf.encoded("JPEG", exif=phone),
        "gimp jpeg": pf.encoded("JPEG", exif=pf.exif({SOFTWARE: "GIMP 2.10"}), xmp=gimp_xmp),
        "gimp png": pf.png_with_text({"Software": "GIMP 2.10", "Comment": "Created with GIMP"}),
        "png xmp": pf.png_with_xmp(gimp_xmp),
        "webp": pf.encoded("WEBP", exif=pf.exif({MAKE: "Apple", MODEL: "iPhone 15"})),
    }
    for name, data in benign.items():
        assert scanner.scan(data) == (), name


def test_benign_photos_give_nothing(scanner):
    photos = sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    assert photos
    for path in photos:
        assert scanner.scan(path.read_bytes()) == (), path.name


# --- bad and hostile input --------------------------------------------------------------


def test_corrupt_and_truncated_files_give_nothing(scanner):
    png = pf.png_with_text({"parameters": pf.A1111_PARAMETERS})
    jpeg = pf.encoded("JPEG", exif=pf.exif({SOFTWARE: "Midjourney"}))
    bad = [
        b"",
        b"not an image at all",
        bytes(range(256)) * 40,
        b"\x89PNG\r\n\x1a\n",
        png[:12],
        jpeg[:3],
        jpeg[:30],
        b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00MM\x00*" + b"\xff" * 100,
        b"RIFF\x10\x00\x00\x00WEBPVP8X" + b"\x00" * 6,
        b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20,
        pf.png_with_chunks([pf.png_chunk(b"zTXt", b"parameters\x00\x00not zlib at all")]),
        pf.png_with_chunks([pf.png_chunk(b"iTXt", b"parameters\x00\x01")]),
        pf.png_with_chunks([pf.png_chunk(b"tEXt", b"\x00no keyword")]),
    ]
    for data in bad:
        assert scanner.scan(data) == (), data[:16]


def test_truncated_text_chunk_is_read_as_far_as_it_goes(scanner):
    png = pf.png_with_text({"prompt": pf.COMFYUI_PROMPT})
    cut = png.index(b"KSampler") + 30  # inside the chunk, after "class_type"
    assert signals(scanner.scan(png[:cut])) == {("png-text", "png-text=prompt", "ComfyUI")}


def test_declared_chunk_length_past_the_end(scanner):
    data = pf.png_with_chunks([pf.png_chunk(b"tEXt", b"Software\x00Midjourney", length=0xFFFFFFF0)])
    assert signals(scanner.scan(data)) == {("png-text", "generator=Midjourney", "Midjourney")}


def test_huge_and_compressed_bomb_text_is_cut_before_matching(scanner):
    # the settings lie beyond MAX_TEXT_BYTES: only the head of a value is ever looked at
    padding = "a" * (MAX_TEXT_BYTES + 10)
    huge = pf.png_with_text({"parameters": padding + pf.A1111_PARAMETERS})
    assert scanner.scan(huge) == ()
    # 64 MiB of zeros in 64 KiB: inflated only as far as the limit, so memory stays small
    bomb_body = b"parameters\x00\x00" + zlib.compress(b"\x00" * (64 * 1024 * 1024) + b"Steps: 20", 9)
    bomb = pf.png_with_chunks([pf.png_chunk(b"zTXt", bomb_body)] * 4)
    tracemalloc.start()
    try:
        assert scanner.scan(bomb) == ()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    big_plain = pf.png_with_text({"Comment": "x" * (8 * 1024 * 1024), "Software": "Midjourney"})
    assert signals(scanner.scan(big_plain)) == {("png-text", "generator=Midjourney", "Midjourney")}


def test_text_chunks_beyond_the_limit_are_not_read(scanner):
    junk = [pf.text_chunk("tEXt", f"k{i}", "x") for i in range(MAX_TEXT_CHUNKS)]
    late = pf.png_with_chunks([*junk, pf.text_chunk("tEXt", "Software", "Midjourney")])
    early = pf.png_with_chunks([pf.text_chunk("tEXt", "Software", "Midjourney"), *junk])
    assert scanner.scan(late) == ()
    assert scanner.scan(early) != ()


def test_hostile_xmp_is_bounded_and_still_matched(scanner):
    unclosed = b"<xmp:CreatorTool>" * 20_000  # every opening searches only a bounded window
    xmp = pf.xmp_packet({"xmp:CreatorTool": "Midjourney"})
    found = scanner.scan(pf.png_with_xmp(xmp[:-30] + unclosed + xmp[-30:]))
    assert signals(found) == {("xmp", "generator=Midjourney", "Midjourney")}
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>' + xmp
    assert signals(scanner.scan(pf.png_with_xmp(doctype))) == {("xmp", "generator=Midjourney", "Midjourney")}


def test_scan_takes_bytes_like_only(scanner):
    data = pf.png_with_text({"parameters": pf.A1111_PARAMETERS})
    assert scanner.scan(bytearray(data)) == scanner.scan(memoryview(data)) == scanner.scan(data)
    with pytest.raises(TypeError):
        scanner.scan("image.png")  # type: ignore[arg-type]


# --- the generator catalog --------------------------------------------------------------


def test_operator_file_adds_a_generator(tmp_path):
    extra = tmp_path / "local-generators.toml"
    extra.write_text(
        '[[generator]]\nname = "Pixel Dreamer"\nkind = "nudify"\nmatch = ["PixelDreamer", "Pixel Dreamer Pro"]\n'
        '[[png_key]]\nkey = "pd_meta"\ngenerator = "Pixel Dreamer"\n',
        encoding="utf-8",
    )
    jpeg = pf.encoded("JPEG", exif=pf.exif({SOFTWARE: "PixelDreamer 3.2"}))
    png = pf.png_with_text({"pd_meta": "{}"})
    assert ProvenanceScanner(c2pa=False).scan(jpeg) == ()
    extended = ProvenanceScanner(extra_files=[extra], c2pa=False)
    assert signals(extended.scan(jpeg)) == {("exif", "generator=Pixel Dreamer", "Pixel Dreamer")}
    assert signals(extended.scan(png)) == {("png-text", "png-text=pd_meta", "Pixel Dreamer")}
    # the built-in entries are still there
    assert extended.scan(pf.encoded("JPEG", exif=pf.exif({SOFTWARE: "Midjourney"}))) != ()


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[[generator]]\nname = 'X'\nkind = 'camera'\nmatch = ['X']\n", "kind"),
        ("[[generator]]\nname = 'X'\nmatch = []\n", "match"),
        ("[[generator]]\nname = 'X'\nmatch = ['A-I']\n", "too short"),
        ("[[generator]]\nmatch = ['X']\n", "name"),
        ("[[png_key]]\nkey = 'k'\n", "generator"),
        ("[[settings_text]]\ngenerator = 'X'\ncontains_all = 'Steps'\n", "contains_all"),
        ("[[generators]]\nname = 'X'\n", "generators"),
        ("generator = 'X'\n", "generator"),
        ("[[generator]\n", "TOML"),
    ],
)
def test_malformed_operator_file_is_a_config_error(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingError) as err:
        ProvenanceScanner(extra_files=[path], c2pa=False)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_missing_operator_file_is_a_config_error(tmp_path):
    with pytest.raises(SettingError, match="cannot be read"):
        load_catalog([tmp_path / "absent.toml"])


def test_builtin_catalog_is_well_formed():
    catalog = load_catalog()
    names = {g.name for g in catalog.generators}
    for expected in (
        "Stable Diffusion",
        "Midjourney",
        "Adobe Firefly",
        "ComfyUI",
        "InvokeAI",
        "NovelAI",
        "Google Imagen",
        "Ideogram",
        "FLUX (Black Forest Labs)",
        "Leonardo.Ai",
    ):
        assert expected in names
    assert {g.kind for g in catalog.generators} <= {"image-generator", "face-swap", "nudify"}
    assert {k.generator for k in catalog.png_keys} <= names


def test_bad_trust_anchors_are_a_config_error():
    with pytest.raises(SettingError):
        ProvenanceScanner(trust_anchors="-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")


def test_utf8_in_an_ascii_exif_tag_is_read_as_utf8(scanner):
    ex = pf.exif()
    ex[SOFTWARE] = "DALL·E 3".encode()  # many writers do this; Pillow reads Latin-1
    found = scanner.scan(pf.encoded("JPEG", exif=ex))
    assert signals(found) == {("exif", "generator=OpenAI (DALL·E, ChatGPT images)", "OpenAI (DALL·E, ChatGPT images)")}
