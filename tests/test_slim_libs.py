"""scripts/slim-libs' stubs, on a small library built here: a program linked against the real one
still loads with the stub in its place (same soname and symbol versions), a call into an "abort"
stub stops the process saying what was called, and a "zero" stub answers 0. The container build
applies it to the wheels' libraries (scripts/container-check runs the image)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not (shutil.which("cc") and shutil.which("readelf")), reason="needs cc and binutils")

LIBRARY = """
int demo_table[16] = {7};
const char *demo_version = "1.0";
int demo_answer(void) { return 42; }
"""
PROGRAM = """
#include <stdio.h>
#include <string.h>
extern int demo_answer(void);
extern int demo_table[16];
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "call") == 0) printf("answer %d\\n", demo_answer());
    else printf("loaded %d\\n", demo_table[1]);
    return 0;
}
"""


def slim_libs():
    loader = importlib.machinery.SourceFileLoader("slim_libs", str(ROOT / "scripts" / "slim-libs"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("slim_libs", loader))
    loader.exec_module(module)
    return module


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "demo.c").write_text(LIBRARY)
    (tmp_path / "demo.map").write_text("DEMO_1 { global: demo_answer; demo_table; demo_version; local: *; };\n")
    (tmp_path / "main.c").write_text(PROGRAM)
    lib = tmp_path / "libdemo-1234abcd.so.1.2.3"
    subprocess.run(
        [
            "cc",
            "-shared",
            "-fPIC",
            "-o",
            str(lib),
            str(tmp_path / "demo.c"),
            "-Wl,-soname,libdemo-1234abcd.so.1.2.3",
            f"-Wl,--version-script={tmp_path / 'demo.map'}",
        ],
        check=True,
    )
    program = tmp_path / "main"
    subprocess.run(["cc", "-o", str(program), str(tmp_path / "main.c"), str(lib), "-Wl,-rpath,$ORIGIN"], check=True)
    assert subprocess.run([str(program), "call"], capture_output=True, text=True).stdout == "answer 42\n"
    return lib, program


def test_an_abort_stub_loads_in_place_of_the_library_and_stops_the_process_when_called(demo, tmp_path):
    lib, program = demo
    work = tmp_path / "work"
    work.mkdir()
    freed = slim_libs().make_stub(lib, work, "abort")
    assert isinstance(freed, int)
    assert "DEMO_1" in subprocess.run(["readelf", "-VW", str(lib)], capture_output=True, text=True).stdout
    loaded = subprocess.run([str(program)], capture_output=True, text=True)
    assert (loaded.returncode, loaded.stdout) == (0, "loaded 0\n"), loaded.stderr  # the data is there, zeroed
    called = subprocess.run([str(program), "call"], capture_output=True, text=True)
    assert called.returncode == -6  # SIGABRT
    assert "demo_answer() was called" in called.stderr and lib.name in called.stderr
    assert "answer" not in called.stdout


def test_a_zero_stub_answers_0(demo, tmp_path):
    lib, program = demo
    work = tmp_path / "work"
    work.mkdir()
    slim_libs().make_stub(lib, work, "zero")
    called = subprocess.run([str(program), "call"], capture_output=True, text=True)
    assert (called.returncode, called.stdout) == (0, "answer 0\n"), called.stderr


def test_prune_keeps_what_is_loaded_and_drops_what_nothing_loads(tmp_path):
    site = tmp_path / "site"
    (site / "pkg.libs").mkdir(parents=True)
    (site / "pkg").mkdir()
    (tmp_path / "a.c").write_text("int a(void) { return 1; }\n")
    (tmp_path / "b.c").write_text("int b(void) { return 2; }\n")
    used, unused = site / "pkg.libs" / "liba-1.so", site / "pkg.libs" / "libb-1.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", str(used), str(tmp_path / "a.c"), "-Wl,-soname,liba-1.so"], check=True
    )
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", str(unused), str(tmp_path / "b.c"), "-Wl,-soname,libb-1.so"], check=True
    )
    (tmp_path / "m.c").write_text("extern int a(void); int m(void) { return a(); }\n")
    subprocess.run(
        [
            "cc",
            "-shared",
            "-fPIC",
            "-o",
            str(site / "pkg" / "_m.so"),
            str(tmp_path / "m.c"),
            str(used),
            "-Wl,-rpath,$ORIGIN/../pkg.libs",
        ],
        check=True,
    )
    freed = slim_libs().prune(site)
    assert used.exists() and not unused.exists()
    assert freed > 0
