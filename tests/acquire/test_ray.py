"""`--executor ray`: one Ray task per arm on a local instance gives the rows of a single-process run, also when a
worker dies mid-arm (Ray retries its task, which continues from the arm's state) and when the run is stopped and
continued by the other executor."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from acquire.loop import TIMING_COLUMNS, ActiveLearningRun, ExperimentConfig
from acquire.training import TrainConfig
from acquire.rundir import RunDirectoryError

ROOT = Path(__file__).resolve().parents[2]
# Two arms of six rounds, each round a few seconds on one thread: time enough to kill a worker mid-arm.
SMALL = ["--rounds", "6", "--per-round", "10", "--epochs", "100", "--repeats", "1", "--mc-samples", "3",
         "--acquisitions", "random,bald", "--no-progress"]
RAY = ["--executor", "ray", "--ray-cpus", "2", "--threads-per-task", "1"]


def runner(args, data_dir) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "runners.mnist_bald", *args, "--data-dir", str(data_dir)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err


def rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "rounds.csv").drop(columns=TIMING_COLUMNS)


def rows_saved(out: Path) -> int:
    """Arm-rounds saved in the states so far."""
    import json
    return sum(len(json.loads(p.read_text())["rows"]) for p in (out / "state").glob("*.json"))


def ray_arm_workers() -> list[int]:
    """Pids of the Ray worker processes running an arm task (their title is ray::advance_arms)."""
    listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if "ray::advance_arms" in line]


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory, mnist_slice_dir) -> pd.DataFrame:
    pytest.importorskip("ray")
    out = tmp_path_factory.mktemp("local") / "run"
    finish(runner([*SMALL, "--out", str(out)], mnist_slice_dir))
    return rows(out)


def test_a_worker_killed_mid_arm_is_retried_and_the_rows_are_the_local_run_s(tmp_path, mnist_slice_dir, local_rows):
    out = tmp_path / "ray"
    process = runner([*SMALL, *RAY, "--out", str(out)], mnist_slice_dir)
    killed, deadline = None, time.time() + 300
    while killed is None and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        if (out / "state").is_dir() and 1 <= rows_saved(out) < len(local_rows) - 2:
            workers = ray_arm_workers()
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed = rows_saved(out)
    assert killed is not None, "no arm worker was seen running"
    finish(process)
    pd.testing.assert_frame_equal(rows(out), local_rows)
    assert (out / "curves.png").exists()
    assert not [p for p in out.rglob("*") if ".partial" in p.name]


def test_a_ray_run_stopped_mid_way_is_continued_by_the_local_executor(tmp_path, mnist_slice_dir, local_rows):
    out = tmp_path / "ray"
    process = runner([*SMALL, *RAY, "--out", str(out)], mnist_slice_dir)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not ((out / "state").is_dir() and rows_saved(out)):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "--resume --out" in err
    assert rows_saved(out) < len(local_rows)
    finish(runner(["--resume", "--out", str(out), "--no-progress"], mnist_slice_dir))
    pd.testing.assert_frame_equal(rows(out), local_rows)


def test_a_worker_must_name_arms_of_the_run_and_no_arm_is_advanced_twice(tmp_path, tiny_train, tiny_test, one_thread):
    from acquire.pool import CandidatePool
    config = ExperimentConfig(rounds=1, per_round=5, repeats=1, mc_samples=2, acquisitions=["random"],
                              train=TrainConfig(epochs=1))
    pools = {"raw": CandidatePool({"raw": tiny_train})}
    with ActiveLearningRun(config, pools, tiny_test, tmp_path):
        pass  # the owner writes config.json and rounds.csv
    with pytest.raises(ValueError, match="worker_arms must name arms of the run"):
        ActiveLearningRun(config, pools, tiny_test, tmp_path, worker_arms=["raw/bald/0"])
    with ActiveLearningRun(config, pools, tiny_test, tmp_path, worker_arms=["raw/random/0"]):
        with pytest.raises(RunDirectoryError, match="another process is advancing arm raw/random/0"):
            ActiveLearningRun(config, pools, tiny_test, tmp_path, worker_arms=["raw/random/0"])
        with ActiveLearningRun(config, pools, tiny_test, tmp_path, resume=True) as owner:
            with pytest.raises(RunDirectoryError, match="another process is advancing arm raw/random/0"):
                owner.run(progress=False)


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch):
    from acquire.ray_executor import import_ray
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    with pytest.raises(ValueError, match=r'pip install -e "\.\[ray\]"'):
        import_ray()


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", r"no Ray cluster answers at 127.0.0.1:1 within 0.5 s"),
    ("headnode", r"is not host:port or ray://host:port"),
])
def test_an_unreachable_ray_address_is_refused_within_the_stated_time(address, message):
    from acquire.ray_executor import check_reachable
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        check_reachable(address, timeout=0.5)
    assert time.perf_counter() - start < 5


def test_a_ray_address_that_accepts_but_never_answers_is_refused_within_the_stated_time():
    from acquire.ray_executor import deadline
    start = time.perf_counter()
    with pytest.raises(ValueError, match="no Ray cluster answered at x:1 within 0.5 s"):
        with deadline(0.5, "no Ray cluster answered at x:1 within 0.5 s"):
            time.sleep(10)  # stands in for ray.init retrying forever
    assert time.perf_counter() - start < 5


def test_an_address_where_something_else_listens_is_refused_before_any_file_is_written():
    import socket
    import threading
    from acquire.ray_executor import check_reachable
    pytest.importorskip("ray")
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"{address}"):
        check_reachable(address, timeout=8)
    assert time.perf_counter() - start < 30
    server.close()
