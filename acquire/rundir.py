"""Output-directory ownership shared by the active loop and the sweeps: one process per directory."""

from __future__ import annotations

import fcntl
from pathlib import Path


class RunDirectoryError(RuntimeError):
    """The output directory holds a different or unfinished run; the message says what to do."""


def lock_run_dir(out_dir: Path):
    """Hold an exclusive lock on out_dir/.lock for this process's lifetime; a second run on the same
    directory is refused instead of interleaving rows. Returns the open lock file (keep a reference)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handle = open(out_dir / ".lock", "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunDirectoryError(f"another process is running in {out_dir}; wait for it or stop it first") from None
    return handle
