"""Many arms at once with Ray: one task per arm, on a local Ray instance or a cluster (an optional extra:
pip install -e ".[ray]").

The calling process owns the run: it has opened it as an ActiveLearningRun (config.json written, rounds.csv
rebuilt, the directory locked). Each task opens the same run as a worker for its one arm
(`ActiveLearningRun(..., worker_arms=[arm])`, built by `open_worker`), starting from the arm's saved state, and
writes only that state. So a task whose worker dies is retried by Ray and continues from the arm's last saved
round, giving the rows an uninterrupted run gives. The owner rebuilds rounds.csv from the states as tasks
report, in the order a single process writes it, so --resume and plotting work the same either way.

Threads: each task sets torch to `threads_per_task` threads and asks Ray for as many CPUs, so tasks never
oversubscribe cores; on a GPU, `gpus_per_task` (a fraction) lets several arms share one device. On a cluster
the run directory, data and GAN checkpoints must lie on a file system every node sees at the same paths.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from acquire.errors import UserError
from acquire.validate import check_float, check_int, check_positive_int
from acquire.loop import ActiveLearningRun

CONNECT_SECONDS = 60.0  # how long an unreachable --ray-address may take to be refused
INSTALL_HINT = 'install it with: pip install -e ".[ray]"   (or: pip install "ray>=2.9")'


@dataclass(frozen=True)
class RayOptions:
    """address: a Ray cluster's address (None: start a local instance with num_cpus CPUs, None = all).
    threads_per_task: torch threads (and Ray CPUs) per arm task. gpus_per_task: GPU fraction per task (needed
    on a CUDA device: a task asking for no GPU sees none). max_retries: re-runs of a task whose worker died.
    poll_seconds: how often rounds.csv is rebuilt while tasks run."""

    address: str | None = None
    num_cpus: int | None = None
    threads_per_task: int = 1
    gpus_per_task: float = 0.0
    max_retries: int = 3
    poll_seconds: float = 5.0

    def __post_init__(self):
        check_positive_int("threads per task", self.threads_per_task)
        check_float("GPUs per task", self.gpus_per_task, minimum=0, maximum=1)
        check_int("retries", self.max_retries)
        check_float("poll seconds", self.poll_seconds, above=0)
        if self.num_cpus is not None and check_positive_int("Ray CPUs", self.num_cpus) < self.threads_per_task:
            raise UserError(f"a local Ray instance of {self.num_cpus} CPU(s) cannot run a task of "
                             f"{self.threads_per_task} threads; give more CPUs or fewer threads per task")


def import_ray():
    """The ray module, or a UserError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed; {INSTALL_HINT}") from None
    return ray


def check_reachable(address: str | None, timeout: float = CONNECT_SECONDS) -> None:
    """Refuse, within `timeout` seconds, a Ray address ('host:port' or 'ray://host:port') nothing answers on; None
    (a local instance) and 'auto' (found by Ray from this machine's session files) are not probed."""
    if address in (None, "auto", "local"):
        return
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r} is not host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise UserError(f"no Ray cluster answers at {address} within {timeout:g} s ({error}); start it (ray start "
                        "--head) or fix --ray-address") from None
    probe_cluster(address, timeout)


PROBE = ("import sys, ray; ray.init(address=sys.argv[1], include_dashboard=False, logging_level='ERROR', "
         "log_to_driver=False); ray.shutdown()")


def probe_cluster(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Refuse, within `timeout` seconds, an address where something listens that is not a Ray cluster: ray.init is
    tried in a child process (Ray's connection retries cannot be interrupted in this one), before any file is
    written."""
    try:
        probe = subprocess.run([sys.executable, "-c", PROBE, address], capture_output=True, text=True,
                               timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"{address} accepts connections but did not answer as a Ray cluster within {timeout:g} s; "
                        "start one there (ray start --head) or fix --ray-address") from None
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise UserError(f"Ray could not connect to {address} ({last}); start a cluster there (ray start --head) or "
                        "fix --ray-address")


@contextmanager
def deadline(seconds: float | None, message: str) -> Iterator[None]:
    """Raise UserError(message) if the block runs longer than `seconds` (None, or outside the main thread: no
    limit)."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise UserError(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def advance_arms(open_worker: Callable[[list[str]], ActiveLearningRun], arms: list[str], threads: int) -> list[str]:
    """(A Ray task.) Advance `arms` to the run's last round in this worker process, with `threads` torch threads."""
    torch.set_num_threads(threads)
    with open_worker(arms) as run:
        run.run(progress=False)
    return arms


def run_on_ray(owner: ActiveLearningRun, open_worker: Callable[[list[str]], ActiveLearningRun],
               options: RayOptions = RayOptions(), progress: bool = True) -> Path:
    """Advance every unfinished arm of the run `owner` holds, one Ray task per arm; returns rounds.csv's path.

    open_worker(arms) -> the run opened as a worker for `arms` in the task's process (it must be picklable: a
    module-level function, or a functools.partial of one, that rebuilds the pools and the test set there).
    A task's error stops the others and is raised here; the states keep every finished round.
    """
    ray = import_ray()
    if owner.device.type == "cuda" and options.gpus_per_task <= 0:
        raise UserError("a CUDA run on Ray needs a GPU fraction per task (--gpus-per-task, e.g. 0.25 for four arms "
                         "per GPU): a task that asks for no GPU sees none")
    check_reachable(options.address)
    started_here = not ray.is_initialized()
    if started_here:
        # Ray runs its workers at niceness 15, so on a busy machine the arms starve (a 3 s run took 90 s beside two
        # busy processes); the local instance started here runs them at the caller's priority unless told otherwise.
        os.environ.setdefault("RAY_worker_niceness", "0")
        handler = signal.getsignal(signal.SIGTERM)
        limit = CONNECT_SECONDS if options.address else None  # a local instance starts in its own time
        with deadline(limit, f"no Ray cluster answered at {options.address} within {CONNECT_SECONDS:g} s; start "
                             "it (ray start --head) or fix --ray-address"):
            ray.init(address=options.address, num_cpus=None if options.address else options.num_cpus,
                     include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        signal.signal(signal.SIGTERM, handler)  # ray.init's exits at once; the caller's stops cleanly
    config = owner.config
    unfinished = [state for state in owner.arms if state.rounds_done < config.rounds]
    task = ray.remote(advance_arms).options(num_cpus=options.threads_per_task, num_gpus=options.gpus_per_task,
                                            max_retries=options.max_retries)
    done_before = sum(state.rounds_done for state in owner.arms)  # the owner wrote rounds.csv when it opened
    total = sum(config.rounds - state.rounds_done for state in unfinished)
    pending = [task.remote(open_worker, [str(state.arm)], options.threads_per_task) for state in unfinished]
    try:
        with tqdm(total=total, disable=not progress, dynamic_ncols=True, unit="arm-round",
                  desc=f"{len(unfinished)} arms on Ray") as bar:
            while pending:
                ready, pending = ray.wait(pending, num_returns=len(pending), timeout=options.poll_seconds)
                for ref in ready:
                    get_result(ray, ref)
                bar.update(owner.rebuild_csv() - done_before - bar.n)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        owner.rebuild_csv()
        if started_here:
            ray.shutdown()
    return owner.csv_path


def get_result(ray, ref):
    """ray.get(ref), with a task's own exception (a user error, say) raised as itself rather than wrapped."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise
