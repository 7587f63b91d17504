"""Peak resident memory of `vigil scan` over a folder of hostile files.

Builds the folder in a temporary directory (decompression bombs at the pixel limit in 8, 16 and
32 bits, thousands of frames, lying types; see tests/support/hostile_files.py), then runs
`vigil scan --json --workers 2` over it as its own process, with both real models (NudeNet and
Open-NSFW), and prints the child's peak RSS, the time, and how many files got an answer.

    .venv/bin/python -m bench.bench_hostile_scan [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.hostile_files import write_hostile_folder

ROOT = Path(__file__).resolve().parent.parent
BUDGET_MB = 500


def run_scan(folder: Path) -> tuple[int, int, float]:
    """(files answered, peak RSS in MB of the scan process, seconds)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, sys\n"
            "from bot.__main__ import main\n"
            "code = main(sys.argv[1:])\n"
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(code)\n",
            "scan",
            "--json",
            "--workers",
            "2",
            str(folder),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"vigil scan exited with {proc.returncode}")
    answered = sum(1 for line in proc.stdout.splitlines() if line.startswith("{") and json.loads(line).get("path"))
    peak_kb = next(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_KB"))
    for line in proc.stdout.splitlines():
        item = json.loads(line)
        print(f"  {Path(item['path']).name:32} {item.get('label') or 'error: ' + item['error'][:90]}")
    return answered, peak_kb // 1024, elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hostile"
        names = write_hostile_folder(folder)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        print(f"{len(names)} hostile files, {size:.1f} MB on disk")
        for _ in range(args.repeat):
            answered, peak, seconds = run_scan(folder)
            print(
                f"answered {answered}/{len(names)} files in {seconds:.1f} s; peak RSS {peak} MB "
                f"(budget {BUDGET_MB} MB: {'ok' if peak <= BUDGET_MB else 'OVER'})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
