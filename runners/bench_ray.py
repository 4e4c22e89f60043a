"""Throughput of one grid three ways: one process, Ray with one worker, Ray with every core
(`python -m runners.bench_ray --help`)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from acquire.data import resolve_data_dir
from acquire.files import write_json
from acquire.loop import TIMING_COLUMNS
from runners.cli import comma_list, numbers_may_be_negative

DESCRIPTION = """\
Runs the same small grid of runners.mnist_bald arms (the paper's per-round work: whole pool scored at T=20,
100 epochs, on a training set that starts at --initial images) three ways, back to back on this machine:
  local    one process, every arm in lockstep, torch using every core (the default executor);
  ray-1    --executor ray with a local Ray instance of 1 CPU: one single-threaded arm at a time;
  ray-all  --executor ray with every core: as many single-threaded arms at once.
Prints each one's arm-rounds per second and the ratios ray-all/local (is Ray at least as fast as one
process?) and ray-all/ray-1 (does throughput grow with workers?), checks that both Ray runs wrote identical
rows (both one thread per arm), and writes JSON to --out. Needs Ray: pip install -e ".[ray]".
"""


def run_grid(out: Path, executor_args: list[str], grid_args: list[str], data_dir: Path, threads: int) -> float:
    """Wall-clock seconds of one runners.mnist_bald run into `out` (a fresh directory)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "runners.mnist_bald", *grid_args, *executor_args, "--no-progress",
               "--data-dir", str(data_dir), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "rounds.csv").drop(columns=TIMING_COLUMNS)


def main(argv: list[str] | None = None) -> int:
    p = numbers_may_be_negative(argparse.ArgumentParser(prog="python -m runners.bench_ray", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("--acquisitions", type=comma_list, default=["random", "bald"],
                   help="acquisition functions of the grid (default: random,bald)")
    p.add_argument("--repeats", type=int, default=2, help="repeats: arms = acquisitions x repeats (default: 2)")
    p.add_argument("--rounds", type=int, default=2, help="rounds per arm (default: 2)")
    p.add_argument("--initial", type=int, default=100,
                   help="class-balanced images before round 1, so rounds cost what mid-run rounds do (default: 100)")
    p.add_argument("--cpus", type=int, default=os.cpu_count(), help="cores to use (default: all, %(default)s)")
    p.add_argument("--data-dir", type=Path, help="MNIST directory (default: $GAN_ACQUIRE_DATA or the cache)")
    p.add_argument("--out", type=Path, default=Path("results/bench"), help="JSON directory (default: %(default)s)")
    args = p.parse_args(argv)
    from acquire.errors import UserError
    from acquire.ray_executor import import_ray
    try:
        import_ray()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    data_dir = resolve_data_dir(args.data_dir)
    grid = ["--acquisitions", ",".join(args.acquisitions), "--repeats", str(args.repeats), "--rounds",
            str(args.rounds), "--initial", str(args.initial), "--device", "cpu"]
    arm_rounds = len(args.acquisitions) * args.repeats * args.rounds
    ways = {"local": ([], args.cpus),
            "ray-1": (["--executor", "ray", "--ray-cpus", "1", "--threads-per-task", "1"], 1),
            "ray-all": (["--executor", "ray", "--ray-cpus", str(args.cpus), "--threads-per-task", "1"], 1)}
    report = {"cpus": args.cpus, "grid": grid, "arm_rounds": arm_rounds, "seconds": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (executor, threads) in ways.items():
            print(f"{name}: {arm_rounds} arm-rounds ...", file=sys.stderr)
            report["seconds"][name] = run_grid(Path(scratch) / name, executor, grid, data_dir, threads)
            print(f"  {name:8s} {report['seconds'][name]:7.1f} s   "
                  f"{arm_rounds / report['seconds'][name] * 3600:7.1f} arm-rounds/hour")
        report["ray_rows_identical"] = rows(Path(scratch) / "ray-1").equals(rows(Path(scratch) / "ray-all"))
    s = report["seconds"]
    report["ratios"] = {"ray_all_over_local": s["local"] / s["ray-all"], "ray_all_over_ray_1": s["ray-1"] / s["ray-all"]}
    print(f"Ray on {args.cpus} cores is {report['ratios']['ray_all_over_local']:.2f}x one process and "
          f"{report['ratios']['ray_all_over_ray_1']:.2f}x one Ray worker; the two Ray runs' rows are "
          f"{'identical' if report['ray_rows_identical'] else 'DIFFERENT'}")
    path = write_json(args.out / "ray-cpu.json", report)
    print(f"wrote {path}")
    return 0 if report["ray_rows_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
