"""`python -m runners.mnist_bald` killed at any moment: SIGKILL then --resume gives the rows of an uninterrupted
run and leaves no temp file; SIGTERM before the work starts exits 130 without a traceback."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from acquire.loop import TIMING_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--rounds", "3", "--per-round", "5", "--epochs", "20", "--repeats", "1", "--mc-samples", "3",
        "--acquisitions", "random,bald", "--no-progress"]


def runner(args, mnist_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "runners.mnist_bald", *args, "--data-dir", str(mnist_dir)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows(out):
    return pd.read_csv(out / "rounds.csv").drop(columns=TIMING_COLUMNS)


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_rows(tmp_path, mnist_slice_dir):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    start = time.perf_counter()
    assert runner([*TINY, "--out", str(whole)], mnist_slice_dir).wait() == 0
    seconds = time.perf_counter() - start  # kill anywhere from start-up to the last round
    draw = random.Random(0)
    moments = [seconds * draw.uniform(0.2, 0.95) for _ in range(3)]
    args = [*TINY, "--out", str(killed)]
    for moment in moments:
        process = runner(args, mnist_slice_dir)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (killed / "config.json").exists():
            args = ["--resume", "--out", str(killed), "--no-progress"]
    process = runner(args, mnist_slice_dir)
    assert process.wait() == 0, process.stderr.read()
    pd.testing.assert_frame_equal(rows(killed), rows(whole))
    assert not [p for p in killed.rglob("*") if ".partial" in p.name]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_stops_cleanly(tmp_path, mnist_dir, sig):
    process = runner([*TINY, "--out", str(tmp_path / "out")], mnist_dir)
    time.sleep(0.3)  # still importing torch
    process.send_signal(sig)
    assert process.wait() == 130
    assert "Traceback" not in process.stderr.read()


def test_gan_training_killed_at_random_moments_continues_to_the_uninterrupted_weights(tmp_path, mnist_slice_dir):
    """SIGKILL loses at most the steps since the last save (here: every step); rerunning the command continues."""
    tiny = [x for field, value in [("latent_dim", 8), ("embed_dim", 4), ("g_channels", 8), ("d_channels", 8),
                                   ("batch_size", 50), ("epochs", 12)] for x in ("--set", f"small_dcgan.{field}={value}")]

    def train(out):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        return subprocess.Popen([sys.executable, "-m", "runners.train_gans", "--gans", "small_dcgan", *tiny,
                                 "--no-quality", "--checkpoint-minutes", "0", "--data-dir", str(mnist_slice_dir),
                                 "--out", str(out)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)

    start = time.perf_counter()
    assert train(tmp_path / "whole").wait() == 0
    seconds, draw = time.perf_counter() - start, random.Random(1)
    for _ in range(3):
        process = train(tmp_path / "killed")
        time.sleep(seconds * draw.uniform(0.45, 0.9))  # past start-up (~5 s of ~12), into the 240 steps
        process.send_signal(signal.SIGKILL)
        process.wait()
    process = train(tmp_path / "killed")
    assert process.wait() == 0, process.stderr.read()
    sha = [json.loads((tmp_path / d / "small_dcgan.json").read_text())["weights_sha256"] for d in ("whole", "killed")]
    assert sha[0] == sha[1]
    assert not [p for p in (tmp_path / "killed").rglob("*") if ".partial" in p.name]
