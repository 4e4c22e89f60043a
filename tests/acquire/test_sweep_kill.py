"""SIGKILL real sweep processes at random moments and resume each time: the rows equal an uninterrupted run's.

For each runner (both at once, one core each): an uninterrupted run of a tiny sweep gives the reference rows and
times (start-up until it saves config.json, then its cells until the last row). A second sweep is then killed with
SIGKILL KILLS times: first at a random moment of its start-up, then at random moments of its cells (after it
says how many cells it has left), each time continued with `--resume --out OUT` alone (or started again if it
died before saving config.json), and finally run to the end. Its results.csv must equal the reference's
(timing columns aside) and no temp file may remain.
"""

import os
import random
import re
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
KILLS = 3
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


def uninterrupted(program: str, flags: list[str], out: Path, data_dir: Path) -> tuple[float, float]:
    """Run the sweep to its end; (seconds until it saved config.json, seconds from then to its last row)."""
    began = time.time()
    process = start(program, [*flags, "--out", str(out)], data_dir, out.parent / f"{out.name}.log")
    assert process.wait(timeout=300) == 0, (out.parent / f"{out.name}.log").read_text()
    saved, last_row = (out / "config.json").stat().st_mtime, (out / "results.csv").stat().st_mtime
    return saved - began, last_row - saved


def cells_left(log: Path, seen: int, process: subprocess.Popen) -> float | None:
    """Wait until the process logs its (seen+1)-th "N of M cells to run"; N / M, or None if it ended first."""
    while process.poll() is None:
        found = re.findall(r"(\d+) of (\d+) cells to run", log.read_text())
        if len(found) > seen:
            return int(found[seen][0]) / int(found[seen][1])
        time.sleep(0.01)
    return None


def killed_and_resumed(program: str, flags: list[str], out: Path, data_dir: Path, startup: float, cells: float,
                       rng: random.Random) -> int:
    """Kill the sweep at a random moment of its start-up, then KILLS - 1 times at a random moment of the time its
    cells left should take, resuming it each time; then run it to the end. Returns the kills made."""
    log, kills = out.parent / f"{out.name}.log", 0
    for attempt in range(KILLS + 1):
        argv = ["--resume"] if (out / "config.json").exists() else flags
        seen = len(re.findall("cells to run", log.read_text())) if log.exists() else 0
        process = start(program, [*argv, "--out", str(out)], data_dir, log)
        if attempt == KILLS:
            assert process.wait(timeout=300) == 0, log.read_text()
            break
        left = 0.0 if attempt == 0 else cells_left(log, seen, process)
        delay = rng.uniform(0, startup) if attempt == 0 else rng.uniform(0, cells * (left or 0.0))
        try:
            assert process.wait(timeout=delay) == 0, log.read_text()
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            kills += 1
    return kills


def rows_without_timing(path: Path, columns: list[str]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in read_csv_rows(path, columns)]


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_rows(mnist_slice, gan_dir, tmp_path):
    data_dir = mnist_slice
    seed = random.randrange(2 ** 32)
    programs = sweeps(gan_dir)

    def check(program: str) -> tuple[str, int]:
        flags, _ = programs[program]
        startup, cells = uninterrupted(program, flags, tmp_path / f"{program}_whole", data_dir)
        return program, killed_and_resumed(program, flags, tmp_path / f"{program}_killed", data_dir, startup, cells,
                                           random.Random(f"{seed} {program}"))

    with ThreadPoolExecutor(len(programs)) as pool:
        kills = dict(pool.map(check, programs))
    for program, (_, columns) in programs.items():
        killed = tmp_path / f"{program}_killed"
        assert kills[program] >= 1, f"{program}: every run ended before its kill (seed {seed})"
        assert rows_without_timing(killed / "results.csv", columns) == rows_without_timing(
            tmp_path / f"{program}_whole" / "results.csv", columns), f"{program}, seed {seed}"
        assert not list(killed.rglob("*.partial")), f"{program}, seed {seed}"
