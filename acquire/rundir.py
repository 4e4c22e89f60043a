"""Output directories shared by the active loop, the sweeps and GAN training: checked before any work,
owned by one process at a time, and never silently reset.

`check_out_dir` runs before data is loaded: --out must be (or become) a directory, --resume needs a saved
run there and a fresh run needs none. `RunDir` then holds an exclusive lock for the process's work
and sweeps the temp files of killed writers. `read_json` and `config_changes` give every runner the same
clear errors for a damaged config.json and for a resume with other settings.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path

from acquire.errors import UserError
from acquire.files import StorageError, is_partial, remove_stale_partials, storage_error, storage_errors

CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"


class RunDirectoryError(UserError):
    """The output directory holds a different, damaged or unfinished run; the message says what to do."""


def check_out_dir(out_dir: Path, resume: bool, kind: str = "run") -> None:
    """Refuse, before any work or file write, an --out that cannot hold this run.

    It must not be a regular file or lie under one; with resume it must hold a saved `kind`
    (config.json), without resume it must not.
    """
    out_dir = Path(out_dir)
    check_directory(out_dir)
    saved = (out_dir / CONFIG_FILE).exists()
    if resume and not saved:
        raise RunDirectoryError(f"--resume: {out_dir} holds no {kind} to continue (no {CONFIG_FILE}); "
                                f"drop --resume to start one there, or give the --out of the {kind} to continue")
    if not resume and saved:
        raise RunDirectoryError(f"{out_dir} already holds a {kind} ({CONFIG_FILE}); pass --resume to continue it, "
                                "or choose another --out")
    leftovers = (LOCK_FILE,)  # and the temp file of a write killed before config.json existed
    if not resume and out_dir.is_dir() and any(p.name not in leftovers and not is_partial(p)
                                               for p in out_dir.iterdir()):
        raise RunDirectoryError(f"{out_dir} is not empty but holds no {kind} ({CONFIG_FILE} is missing); "
                                "choose another --out, or restore its config.json and pass --resume")


def check_directory(out_dir: Path) -> None:
    """Refuse an --out that cannot become a writable directory: a regular file or a path under one, a dangling or
    looping symlink, a name too long, a path under /proc or /sys, or a read-only or forbidden place."""
    out_dir = Path(out_dir)
    with storage_errors(out_dir, "use"):
        real = Path(os.path.realpath(out_dir))
        if real.parts[1:2] in (("proc",), ("sys",)):
            raise StorageError(f"--out {out_dir} lies under /{real.parts[1]}, a virtual file system that holds no "
                               "files; choose another --out")
        for place in [out_dir, *out_dir.parents]:
            if place.is_symlink() and not place.exists():
                raise _bad_symlink(out_dir, place)
            if place.exists() and not place.is_dir():
                where = "is" if place == out_dir else f"lies under {place}, which is"
                raise RunDirectoryError(f"--out {out_dir} {where} a regular file, not a directory; choose another "
                                        "--out")
        base = next(place for place in [out_dir, *out_dir.parents] if place.exists())
        if not os.access(base, os.W_OK | os.X_OK):
            code = errno.EROFS if os.statvfs(base).f_flag & os.ST_RDONLY else errno.EACCES
            raise storage_error(out_dir, OSError(code, os.strerror(code)), "write to", directory=base)


def _bad_symlink(out_dir: Path, link: Path) -> StorageError:
    """The error for `link` (out_dir or one of its parents), a symlink that leads nowhere."""
    where = "" if link == out_dir else f" lies under {link}, which"
    try:
        os.stat(link)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return StorageError(f"--out {out_dir}{where} is a symlink that loops; fix the link or choose another "
                                "--out")
    return StorageError(f"--out {out_dir}{where} is a dangling symlink (to {os.readlink(link)}, which does not "
                        "exist); create its target or choose another --out")


class RunDir:
    """An exclusive lock on out_dir/.lock (or out_dir/`lock_file`) for as long as it is open (a second process is
    refused, its message starting with `holder`, instead of interleaving rows), with the temp files of killed
    writers removed (unless sweep is False: a worker beside the owner, whose peers may live on other machines).
    Use as a context manager or close()."""

    def __init__(self, out_dir: Path, lock_file: str = LOCK_FILE, holder: str = "another process is running",
                 sweep: bool = True):
        self.path = Path(out_dir)
        check_directory(self.path)
        with storage_errors(self.path / lock_file):
            (self.path / lock_file).parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path / lock_file, "a")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise RunDirectoryError(f"{holder} in {self.path}; wait for it or stop it first") from None
        if sweep:
            remove_stale_partials(self.path, recursive=True)

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_json(path: Path) -> dict:
    """A JSON object from `path`; a missing, unreadable or damaged file is a RunDirectoryError naming it."""
    path = Path(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirectoryError(f"{path} is missing; restore it (e.g. git checkout {path}) or start a new run "
                                "with another --out") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        unreadable = storage_error(path, error, "read") if isinstance(error, OSError) else None
        if unreadable is not None:
            raise unreadable from None
        raise RunDirectoryError(f"{path} is damaged ({error}); restore it from version control or a backup, or "
                                "start a new run with another --out") from None
    if not isinstance(value, dict):
        raise RunDirectoryError(f"{path} must hold a JSON object, found {type(value).__name__}; restore it or "
                                "start a new run with another --out")
    return value


def config_changes(saved: dict, now: dict, resumable: set[str] | frozenset[str] = frozenset()) -> str:
    """'' when `now` may resume `saved`; else 'field: saved X, now Y; ...' for every non-resumable change."""
    changed = sorted(k for k in set(saved) | set(now) if k not in resumable and saved.get(k) != now.get(k))
    return "; ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}" for k in changed)
