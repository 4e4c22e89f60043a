"""Writing the files that matter so that a killed run never leaves them half-written, nor leaves litter.

Every atomic write goes through a temp file named ``.<name>.<pid>.partial<suffix>`` beside its target
(the suffix kept, for writers that infer a format from it), then a rename. A process killed with SIGKILL mid-write
leaves that file behind; the next atomic write into the same directory (and every run directory opened by
`acquire.rundir`) deletes the partial files of processes that no longer exist. Files are created with the user's
umask, like every other file.

An OS failure the user can fix (disk full, read-only file system, permission, a bad symlink, a name too long) at a
write or open point is a one-line `StorageError` naming the path and the cause; any other OSError keeps its traceback.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from acquire.errors import UserError

PARTIAL_MARK = ".partial"
_PARTIAL_NAME = re.compile(r"^\..+\.(\d+)\.partial(\.[^.]*)?$")


class StorageError(UserError):
    """A file or directory that cannot be read or written for a reason the user can fix; names the path and cause."""


# errno -> the cause, said about the directory {dir} that holds the path, and the fix.
_CAUSES = {
    errno.ENOSPC: "no space left on {dir}; free some space there or choose another --out",
    errno.EDQUOT: "disk quota exceeded on {dir}; free some space there or choose another --out",
    errno.EROFS: "{dir} is on a read-only file system; choose another --out",
    errno.EACCES: "permission denied; fix the permissions of {dir} or choose another --out",
    errno.EPERM: "operation not permitted in {dir}; fix its permissions or choose another --out",
    errno.ENAMETOOLONG: "a name in the path is too long for the file system; choose a shorter --out",
    errno.ELOOP: "a symlink in the path loops (too many levels of symbolic links); fix the link or choose another "
                 "--out",
    errno.ENOENT: "a directory in the path does not exist and cannot be created there (a dangling symlink, or a "
                  "virtual file system such as /proc); choose another --out",
    errno.EEXIST: "a part of the path exists but is not a directory (a dangling symlink?); choose another --out",
    errno.ENOTDIR: "a part of the path is not a directory; choose another --out",
    errno.EMFILE: "too many open files in this process; raise the limit (ulimit -n) or run fewer arms at once",
}


def storage_error(path: Path, error: OSError, action: str = "write", directory: Path | None = None
                  ) -> StorageError | None:
    """The one-line StorageError for `error` met while trying to `action` `path` (in `directory`, default its
    parent), or None if the cause is not the user's to fix."""
    cause = _CAUSES.get(error.errno)
    if cause is None:
        return None
    path = Path(path)
    return StorageError(f"cannot {action} {path}: {cause.format(dir=path.parent if directory is None else directory)}")


@contextmanager
def storage_errors(path: Path, action: str = "write") -> Iterator[None]:
    """Turn an OSError the user can fix, raised inside the block, into a StorageError about `path`."""
    try:
        yield
    except OSError as error:
        converted = storage_error(path, error, action)
        if converted is None:
            raise
        raise converted from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_partial(path: Path) -> bool:
    """Whether `path` is the temp file of an atomic write."""
    return _PARTIAL_NAME.match(Path(path).name) is not None


def remove_stale_partials(directory: Path, recursive: bool = False) -> list[Path]:
    """Delete the temp files of atomic writes in `directory` whose writing process is gone; returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for path in (directory.rglob if recursive else directory.glob)(f".*{PARTIAL_MARK}*"):
        match = _PARTIAL_NAME.match(path.name)
        if match and int(match[1]) != os.getpid() and not _pid_alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call write(tmp) on a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    with storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path.parent)
        tmp = path.parent / f".{path.name}.{os.getpid()}{PARTIAL_MARK}{path.suffix}"
        try:
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path


def write_tensors(path: Path, obj: dict) -> Path:
    """torch.save(obj) to `path` atomically, serialised in memory first: the bytes then depend only on obj (a save
    straight to the temp file embeds its name in the archive), so equal tensors give an equal sha256."""
    import torch  # here, not at the top: light readers (the command lines' argument checks) import this module

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return write_atomic(Path(path), lambda tmp: tmp.write_bytes(buffer.getvalue()))


def write_text(path: Path, text: str) -> Path:
    """Atomically write `text`."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def mark_as_cache(directory: Path, what: str) -> None:
    """Make `directory` (created if needed) a local cache git ignores: a .gitignore of '*' saying `what` it holds."""
    ignore = Path(directory) / ".gitignore"
    if not ignore.exists():
        write_text(ignore, f"# a local cache: {what}\n*\n")


def write_json(path: Path, obj: object) -> Path:
    """Atomically write `obj` as indented JSON."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def csv_text(columns: list[str], rows: Iterable[dict]) -> str:
    """A whole CSV (header, then one line per row) as text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: Path, columns: list[str], rows: Iterable[dict]) -> Path:
    """Atomically (re)write a whole CSV with a header."""
    return write_text(path, csv_text(columns, rows))


def append_csv_row(path: Path, columns: list[str], row: dict) -> None:
    """Append one row (header first if the file is new) and flush it to disk; a failed write is cut back off, so
    the rows already there stay as they were."""
    path = Path(path)
    with storage_errors(path):
        new = not path.exists()
        text = csv_text(columns, [row])
        data = memoryview((text if new else text.split("\n", 1)[1]).encode())
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size)
                if new:
                    path.unlink(missing_ok=True)
                raise
        finally:
            os.close(fd)


class CsvError(UserError):
    """A CSV that is not what the reader expects; the message names the file."""


def read_csv_rows(path: Path, columns: list[str]) -> list[dict[str, str]]:
    """The complete rows of a CSV written by `append_csv_row` (values as strings), [] if it does not exist.

    A last line without its newline is a write cut short by a kill and is dropped (its last field may be
    truncated); a header other than `columns` is an error.
    """
    path = Path(path)
    with storage_errors(path, "read"):
        if not path.exists():
            return []
        text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text))
    if text and reader.fieldnames != columns:
        raise CsvError(f"{path} has columns {reader.fieldnames}, expected {columns}: it was written by another "
                       "version or program; choose another --out")
    rows = list(reader)
    if any(None in row or None in row.values() for row in rows):
        raise CsvError(f"{path} has a row with the wrong number of fields; it was edited or damaged. Restore it "
                       "from version control, or choose another --out")
    return rows
