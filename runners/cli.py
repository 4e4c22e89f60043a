"""What every runner's main() shares: `kill` stops a run as cleanly as Ctrl-C, a user error prints one line
(the problem and the fix) and exits 2, and an interrupted run says what was kept and how to continue (130)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

from acquire.data import DataError
from acquire.rundir import RunDirectoryError
from gans.checkpoint import CheckpointError
from gans.sources import GanNotTrainedError

USER_ERRORS = (ValueError, DataError, RunDirectoryError, GanNotTrainedError, CheckpointError)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_guarded(body: Callable[[], int], interrupted_message: str) -> int:
    """body() -> exit code, with SIGTERM turned into KeyboardInterrupt; user errors -> 2, interrupts -> 130."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return body()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; {interrupted_message}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def resume_hint(kept: str, out) -> str:
    """The interrupted message of a resumable runner writing to `out`."""
    return f"{kept} are saved in {out}. Continue with the same command plus --resume"
