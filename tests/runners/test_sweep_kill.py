"""SIGKILL real sweep processes at fixed points of their work and resume each time: the rows equal an uninterrupted
run's.

For each runner (both at once, one core each): an uninterrupted run of a tiny sweep gives the reference rows. A
second sweep is killed with SIGKILL at four points: at once (before it saves config.json), as soon as config.json
exists (before any row), and as soon as results.csv holds 1 and then 2 rows (a cell in flight each time); after
each kill it is continued with `--resume --out OUT` alone (or started again if it died before saving config.json),
and finally run to the end. Its results.csv must equal the reference's (timing columns aside) and no temp file
may remain. The points are events, not delays, so the test decides the same way on a fast or a slow machine.
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.studies import test_ratio_sweep

from acquire.files import read_csv_rows
from runners import dada_lowdata, ratio_sweep

# test_ratio_sweep's fixtures: 1,000 real training and 200 test images as an MNIST directory; an untrained GAN
mnist_slice, gan_dir = test_ratio_sweep.mnist_slice, test_ratio_sweep.gan_dir

ROOT = Path(__file__).resolve().parents[2]
KILL_AT_ROWS = (None, 0, 1, 2)  # None: at once; n: when config.json exists and results.csv holds n rows
TIMING_COLUMNS = {"train_seconds", "seconds"}


def sweeps(gan_dir):
    """program -> (flags of a tiny sweep of a few seconds, its CSV columns)."""
    return {
        "ratio_sweep": (["--gans", "small_dcgan", "--gan-dir", str(gan_dir), "--sizes", "20", "--ratios", "0,0.5,1",
                         "--modes", "replace,add", "--repeats", "1", "--train-images", "40"], ratio_sweep.COLUMNS),
        "dada_lowdata": (["--sizes", "2", "--repeats", "1", "--phase-one-iterations", "2", "--phase-two-steps", "3",
                          "--methods", ",".join(dada_lowdata.METHODS)], dada_lowdata.COLUMNS),
    }


def start(program: str, argv: list[str], data_dir: Path, log: Path) -> subprocess.Popen:
    with open(log, "a") as log_file:
        return subprocess.Popen([sys.executable, "-m", f"runners.{program}", *argv, "--data-dir", str(data_dir),
                                 "--no-progress"], cwd=ROOT, stdout=log_file, stderr=log_file,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})


def uninterrupted(program: str, flags: list[str], out: Path, data_dir: Path) -> None:
    """Run the sweep to its end."""
    process = start(program, [*flags, "--out", str(out)], data_dir, out.parent / f"{out.name}.log")
    assert process.wait(timeout=300) == 0, (out.parent / f"{out.name}.log").read_text()


def rows_written(out: Path) -> int:
    """Complete rows in results.csv (0 before it exists)."""
    path = out / "results.csv"
    return max(0, path.read_bytes().count(b"\n") - 1) if path.exists() else 0


def reached(out: Path, rows: int | None, process: subprocess.Popen) -> bool:
    """Wait until config.json exists and results.csv holds `rows` rows (None: at once); False if the process ended
    first."""
    while rows is not None and process.poll() is None:
        if (out / "config.json").exists() and rows_written(out) >= rows:
            break
        time.sleep(0.001)
    return process.poll() is None


def killed_and_resumed(program: str, flags: list[str], out: Path, data_dir: Path) -> int:
    """Kill the sweep at each point of KILL_AT_ROWS, resuming it each time; then run it to the end. Returns the kills
    made (a point the sweep passed by ending first makes none)."""
    log, kills = out.parent / f"{out.name}.log", 0
    for rows in (*KILL_AT_ROWS, "end"):
        argv = ["--resume"] if (out / "config.json").exists() else flags
        process = start(program, [*argv, "--out", str(out)], data_dir, log)
        if rows == "end":
            assert process.wait(timeout=300) == 0, log.read_text()
            break
        if reached(out, rows, process):
            process.kill()
            kills += 1
        assert process.wait(timeout=300) in (0, -9), log.read_text()
    return kills


def rows_without_timing(path: Path, columns: list[str]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in read_csv_rows(path, columns)]


def test_sigkill_at_fixed_points_then_resume_gives_the_uninterrupted_rows(mnist_slice, gan_dir, tmp_path):
    programs = sweeps(gan_dir)

    def check(program: str) -> tuple[str, int]:
        flags, _ = programs[program]
        uninterrupted(program, flags, tmp_path / f"{program}_whole", mnist_slice)
        return program, killed_and_resumed(program, flags, tmp_path / f"{program}_killed", mnist_slice)

    with ThreadPoolExecutor(len(programs)) as pool:
        kills = dict(pool.map(check, programs))
    for program, (_, columns) in programs.items():
        killed = tmp_path / f"{program}_killed"
        assert kills[program] >= 2, f"{program}: only {kills[program]} kill(s) landed before the sweep ended"
        assert rows_without_timing(killed / "results.csv", columns) == rows_without_timing(
            tmp_path / f"{program}_whole" / "results.csv", columns), program
        assert not list(killed.rglob("*.partial")), program
