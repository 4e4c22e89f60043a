"""Atomic writes: the user's umask, no litter from killed writers, torn CSV lines dropped."""

import errno
import json
import os
import subprocess
import sys

import pytest

from acquire.errors import UserError
from acquire.files import (CsvError, StorageError, append_csv_row, is_partial, read_csv_rows, remove_stale_partials,
                           write_atomic, write_json)


def test_atomic_writes_get_the_mode_of_any_other_new_file(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "config.json", {"a": 1})
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o644


def test_the_temp_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    litter = tmp_path / f".state.json.{int(dead.stdout)}.partial.json"
    litter.write_text("{ half")
    assert is_partial(litter)
    write_json(tmp_path / "other.json", {})
    assert not litter.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]


def test_a_live_writers_temp_file_and_other_files_are_left_alone(tmp_path):
    mine = tmp_path / f".x.json.{os.getppid()}.partial.json"  # the parent process is alive
    mine.write_text("{")
    (tmp_path / ".hidden").write_text("keep")
    assert remove_stale_partials(tmp_path) == []
    assert mine.exists() and (tmp_path / ".hidden").exists()


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    write_json(tmp_path / "c.json", {"old": True})

    def fails(tmp):
        tmp.write_text("{ partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "c.json", fails)
    assert (tmp_path / "c.json").read_text().strip().startswith("{")
    assert list(tmp_path.iterdir()) == [tmp_path / "c.json"]


def test_a_torn_last_csv_line_is_dropped_and_a_wrong_header_refused(tmp_path):
    path = tmp_path / "rows.csv"
    for i in range(3):
        append_csv_row(path, ["a", "b"], {"a": i, "b": 0.125 * i})
    path.write_text(path.read_text()[:-3])  # killed inside the last field
    assert read_csv_rows(path, ["a", "b"]) == [{"a": "0", "b": "0.0"}, {"a": "1", "b": "0.125"}]
    with pytest.raises(CsvError, match="has columns"):
        read_csv_rows(path, ["a", "c"])


def fail_with(code: int, after: int = 0):
    """An os.write that writes `after` bytes of its first call, then raises OSError(code)."""
    real = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1 and after:
            return real(fd, bytes(data[:after]))
        raise OSError(code, os.strerror(code))
    return write


def test_a_full_disk_mid_row_leaves_the_rows_on_disk_as_they_were(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    for i in range(2):
        append_csv_row(path, ["a", "b"], {"a": i, "b": 0.5})
    before = path.read_bytes()
    monkeypatch.setattr(os, "write", fail_with(errno.ENOSPC, after=2))
    with pytest.raises(StorageError, match=rf"^cannot write {path}: no space left on {tmp_path};"):
        append_csv_row(path, ["a", "b"], {"a": 2, "b": 0.5})
    assert path.read_bytes() == before
    monkeypatch.undo()
    append_csv_row(path, ["a", "b"], {"a": 2, "b": 0.5})
    assert [row["a"] for row in read_csv_rows(path, ["a", "b"])] == ["0", "1", "2"]


def test_a_first_row_that_fails_leaves_no_headerless_file(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    monkeypatch.setattr(os, "write", fail_with(errno.ENOSPC, after=3))
    with pytest.raises(StorageError):
        append_csv_row(path, ["a"], {"a": 1})
    assert not path.exists()


@pytest.mark.parametrize("code, cause", [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"),
                                         (errno.EPERM, "operation not permitted"), (errno.ENOSPC, "no space left")])
def test_an_atomic_write_that_the_os_refuses_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, code, cause):
    write_json(tmp_path / "c.json", {"old": True})

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StorageError, match=f"cannot write {tmp_path / 'c.json'}: .*{cause}") as error:
        write_json(tmp_path / "c.json", {"new": True})
    assert "\n" not in str(error.value) and isinstance(error.value, UserError)
    assert json.loads((tmp_path / "c.json").read_text()) == {"old": True}
    assert list(tmp_path.iterdir()) == [tmp_path / "c.json"]


def test_other_os_errors_keep_their_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "write", fail_with(errno.EIO))
    with pytest.raises(OSError) as error:
        append_csv_row(tmp_path / "rows.csv", ["a"], {"a": 1})
    assert not isinstance(error.value, UserError)


def test_a_name_too_long_or_a_dangling_directory_is_one_line(tmp_path):
    with pytest.raises(StorageError, match="too long"):
        write_json(tmp_path / ("n" * 300) / "config.json", {})
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StorageError, match="dangling symlink"):
        write_json(tmp_path / "gone" / "config.json", {})
