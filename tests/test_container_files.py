"""Static checks of the container files; scripts/container-check builds and runs the image (from .ci/run)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text())


def stages(ins: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for word, rest in ins:
        if word == "FROM":
            out.append([])
        if out:
            out[-1].append((word, rest))
    return out


def test_the_base_image_is_a_build_argument_defaulting_to_official_python_slim(dockerfile):
    first_from = next(i for i, (w, _) in enumerate(dockerfile) if w == "FROM")
    args = [rest for w, rest in dockerfile[:first_from] if w == "ARG"]
    assert any(re.fullmatch(r"BASE_IMAGE=python:3\.11-slim(-bookworm)?", a) for a in args), args
    froms = [rest for w, rest in dockerfile if w == "FROM"]
    assert len(froms) == 2, "multi-stage: a builder and a runtime stage"
    assert froms[0].split()[0] == "${BASE_IMAGE}" and froms[0].lower().endswith("as builder")
    # the runtime is the file system the builder laid out, nothing under it
    assert froms[1] == "scratch"


def test_the_builder_makes_wheels_and_the_runtime_gets_only_the_laid_out_file_system(dockerfile):
    builder, runtime = stages(dockerfile)[0], stages(dockerfile)[-1]
    builder_runs = " ".join(rest for w, rest in builder if w == "RUN")
    assert "pip wheel" in builder_runs and "g++" in builder_runs
    # trimmed, then laid out (the warm-up scan inside it proves nothing it needs was left out)
    assert builder_runs.index("slim-venv /opt/vigil") < builder_runs.index("make-rootfs /opt/vigil /rootfs")
    runtime_text = " ".join(rest for _, rest in runtime)
    for absent in ("apt-get install", "g++", "pip install", "pip wheel", "/wheels"):
        assert absent not in runtime_text
    assert not [rest for w, rest in runtime if w == "RUN"], "no shell in the runtime image to run anything with"
    copies = [rest for w, rest in runtime if w == "COPY"]
    assert copies == ["--from=builder /rootfs /", "--from=builder --chown=10001:10001 /rootfs/data /data"]


def test_the_runtime_stage_runs_vigil_as_a_non_root_user_with_data_in_a_volume(dockerfile):
    runtime = stages(dockerfile)[-1]
    users = [rest for w, rest in runtime if w == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000)
    assert ("VOLUME", "/data") in runtime
    env = " ".join(rest for w, rest in runtime if w == "ENV")
    assert "VIGIL_DATA_DIR=/data" in env and "/opt/vigil/bin" in env
    assert [rest for w, rest in runtime if w == "CMD"] == ['["vigil", "run", "--config", "/config/config.toml"]']
    assert ("EXPOSE", "9464") in runtime


def test_the_healthcheck_probes_healthz_with_python(dockerfile):
    checks = [rest for w, rest in stages(dockerfile)[-1] if w == "HEALTHCHECK"]
    assert len(checks) == 1
    cmd = checks[0].split("CMD", 1)[1].strip()
    assert cmd.startswith('["python", "-m", "bot.ops"')  # python is in the image; curl is not
    assert "/config/config.toml" in cmd
    from bot.ops import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0


def test_nothing_but_the_app_is_copied_and_no_certificate_is_baked_in(dockerfile):
    sources = []
    for word, rest in dockerfile:
        if word == "ADD":
            pytest.fail(f"ADD {rest}: use COPY (ADD fetches URLs and unpacks archives)")
        if word == "COPY" and not rest.startswith("--from"):
            sources.extend(shlex.split(rest)[:-1])
    assert sources, "nothing copied?"
    for src in sources:
        assert not re.match(r"(\./)?(tests|bench|\.venv|\.git|data)(/|$)", src), src
        assert "wheels" not in src and "cert" not in src
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    text = (ROOT / "Dockerfile").read_text()
    assert "type=secret,id=pipcert" in text
    assert not re.search(r"^\s*ENV\s+.*PIP_CERT", text, re.M), "the CA bundle must not stay configured in the image"
    assert "/opt/wheels" not in text and "/etc/pip.conf" not in text and "/etc/xdg/pip" not in text


def test_dockerignore_keeps_tests_and_local_state_out_of_the_build_context(dockerfile):
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "deny everything, then name what the image needs"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert not {"tests", "bench", ".venv", "data", ".git"} & included
    for word, rest in dockerfile:
        if word == "COPY" and not rest.startswith("--from"):
            for src in shlex.split(rest)[:-1]:
                assert src.rstrip("/") in included, f"COPY {src} but .dockerignore leaves it out"


def test_compose_runs_the_image_with_its_volume_config_and_env_file():
    text = (ROOT / "compose.yaml").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"^\s+env_file:\s*vigil\.env\s*$", body, re.M)
    assert re.search(r"^\s+- vigil-data:/data\s*$", body, re.M)
    assert re.search(r"^\s+- \./config\.toml:/config/config\.toml:ro\s*$", body, re.M)
    assert re.search(r"^volumes:\s*\n\s+vigil-data:", body, re.M)
    assert '"127.0.0.1:9464:9464"' in body  # metrics for this machine only
    assert re.search(r"^\s+read_only:\s*true", body, re.M)
    # no secret in the file itself: tokens come from vigil.env
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}", text)
    assert not re.search(r"VIGIL_(TELEGRAM_TOKEN|MATRIX_PASSWORD|MATRIX_ACCESS_TOKEN)\s*:", body)


def test_the_container_check_is_a_valid_script_run_by_ci_after_the_tests():
    script = ROOT / "scripts" / "container-check"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    for needed in (
        "--isolation chroot",
        "debootstrap",
        "podman import",
        "trap cleanup EXIT",
        "/healthz",
        "/readyz",
        "vigil scan",
        "check-config",
        "--runtime runc",
        "--network host",
    ):
        assert needed in text, needed
    # the image's size limits, so that it cannot grow back unnoticed
    assert re.search(r"^MAX_UNPACKED_MB=\$\{VIGIL_CHECK_MAX_UNPACKED_MB:-450\}", text, re.M)
    assert re.search(r"^MAX_MB=\$\{VIGIL_CHECK_MAX_MB:-\d+\}", text, re.M)
    assert 'exec "$NAME" id' not in text, "the image has no coreutils: ask Python"
    # decoding in the trimmed image compared with the venv's
    assert "scripts/lib/media_parity.py make" in text and "media_parity.py check" in text
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    test_step = next(i for i, line in enumerate(ci) if "scripts/test" in line)
    check_step = next(i for i, line in enumerate(ci) if "scripts/container-check" in line)
    assert check_step > test_step


def test_the_readme_tells_operators_how_to_run_it():
    readme = (ROOT / "README.md").read_text()
    assert "## Operating Vigil" in readme
    for topic in (
        "docker compose",
        "vigil.env",
        "vigil backup",
        "vigil purge",
        "/readyz",
        "/metrics",
        "audit_days",
        "Upgrading",
    ):
        assert topic in readme, topic


def _slim_locales() -> set[str]:
    import ast

    tree = ast.parse((ROOT / "scripts" / "slim-venv").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "LOCALES" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("scripts/slim-venv has no LOCALES")


def _babel_chain(name: str) -> list[str]:
    """The locale data files Babel reads for ``name``: itself, then its parents up to root."""
    from babel.core import get_global

    chain = [name]
    while name != "root":
        name = get_global("parent_exceptions").get(name) or (name.rsplit("_", 1)[0] if "_" in name else "root")
        chain.append(name)
    return chain


def test_the_image_keeps_babel_data_for_every_language_an_alert_can_be_written_in():
    # a German or Catalan admin's alert formats its date with Babel: without the data the alert fails
    from bot.i18n import available_languages, cldr_locale

    kept = _slim_locales()
    for language in available_languages():
        missing = [f for f in _babel_chain(cldr_locale(language)) if f not in kept]
        assert not missing, f"{language}: scripts/slim-venv removes Babel's {missing}"
