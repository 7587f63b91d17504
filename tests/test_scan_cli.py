"""`vigil scan` as a user runs it: a real process, real files, the bundled samples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.imagegen import jpeg_bytes, photo, png_bytes
from tests.support.marker_model import add_marker, write_marker_model

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"path", "label", "nudity", "nsfw", "hashes", "manipulation", "ms"}
HASH_KEYS = {"pdq", "pdq_quality", "phash", "dhash", "sha256"}


def vigil(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("pictures")
    (d / "sub").mkdir()
    astronaut = photo("astronaut")
    (d / "holiday.jpg").write_bytes(jpeg_bytes(astronaut))
    (d / "sub" / "marked.png").write_bytes(png_bytes(add_marker(astronaut)))
    (d / "sub" / "lies.gif").write_bytes(jpeg_bytes(photo("coffee")))  # a JPEG named .gif
    (d / "broken.jpg").write_bytes(jpeg_bytes(astronaut)[:3000])
    (d / "notes.txt").write_text("not media: skipped in folders")
    model = write_marker_model(d.parent / "marker.onnx")
    cfg = d.parent / "config.toml"
    cfg.write_text(f'[models.nudity]\npath = "{model}"\n')
    return d, cfg


def test_no_argument_scans_the_bundled_samples():
    r = vigil("scan")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert sum(line.startswith("clean") for line in lines) == 3
    assert "scanned 3 files" in lines[-1] and "images/s" in lines[-1]


def test_json_lines_for_a_folder_with_the_config(folder):
    d, cfg = folder
    r = vigil("scan", "--json", "--config", str(cfg), str(d))
    assert r.returncode == 0, r.stderr
    rows = {Path(o["path"]).name: o for o in map(json.loads, r.stdout.splitlines())}
    assert set(rows) == {"holiday.jpg", "marked.png", "lies.gif", "broken.jpg"}  # notes.txt skipped
    for name in ("holiday.jpg", "marked.png", "lies.gif"):
        assert set(rows[name]) == KEYS and set(rows[name]["hashes"]) == HASH_KEYS
    assert rows["holiday.jpg"]["label"] == "clean" and rows["lies.gif"]["label"] == "clean"
    assert rows["marked.png"]["label"] == "nudity"
    assert {"class", "score", "box"} == set(rows["marked.png"]["nudity"][0])
    # the marker settles the label under every sensitivity: Open-NSFW was not run for it
    assert rows["marked.png"]["nsfw"] is None
    assert all(isinstance(rows[n]["nsfw"], float) for n in ("holiday.jpg", "lies.gif"))
    assert set(rows["broken.jpg"]) == {"path", "error"} and "decoded" in rows["broken.jpg"]["error"]
    assert "scanned 4 files" in r.stderr and "1 nudity" in r.stderr and "1 error" in r.stderr


def test_a_missing_path_or_a_bad_command_line_exits_2(tmp_path):
    assert vigil("scan", str(tmp_path / "nope.jpg")).returncode == 2
    assert vigil("scan", "--frobnicate").returncode == 2


def test_a_bad_config_is_named(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[detectors]\nreview_band = 'wide'\n")
    r = vigil("scan", "--config", str(cfg))
    assert r.returncode == 2 and "detectors.review_band" in r.stderr


def test_a_file_named_explicitly_is_scanned_whatever_its_name(folder):
    d, cfg = folder
    (d / "oddname.dat").write_bytes(jpeg_bytes(photo("rocket")))
    r = vigil("scan", "--json", str(d / "oddname.dat"))
    assert json.loads(r.stdout)["label"] == "clean"


def test_provenance_evidence_in_the_json(tmp_path):
    from tests.support.provenance_files import png_with_text

    f = tmp_path / "generated.png"
    f.write_bytes(
        png_with_text({"parameters": "a watercolor lighthouse\nSteps: 20, Sampler: Euler a, Model: sd_xl_base"})
    )
    r = vigil("scan", "--json", str(f))
    m = json.loads(r.stdout)["manipulation"]
    assert m["derived_from"] == [] and m["provenance"]
    assert all("lighthouse" not in p["detail"] for p in m["provenance"])  # no prompt text
    plain = vigil("scan", "--json", str(ROOT / "tests" / "images" / "coffee.jpg"))
    assert json.loads(plain.stdout)["manipulation"] == {"provenance": [], "derived_from": []}


def test_json_of_a_benign_photo_with_the_real_models():
    """No class that counts scored: the box stage is skipped, so "nudity" is empty (the face
    the full model finds is not listed), and the NSFW score, which decides, is reported."""
    r = vigil("scan", "--json", str(ROOT / "tests" / "images" / "astronaut.jpg"))
    row = json.loads(r.stdout)
    assert row["label"] == "clean" and row["nudity"] == [] and 0.0 <= row["nsfw"] < 0.5
