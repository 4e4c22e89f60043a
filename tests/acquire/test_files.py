"""Atomic writes: the user's umask, no litter from killed writers, torn CSV lines dropped."""

import os
import subprocess
import sys

import pytest

from acquire.files import (CsvError, append_csv_row, is_partial, read_csv_rows, remove_stale_partials, write_atomic,
                           write_json)


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
    assert (tmp_path / "c.json").read_text().strip().startswith("{") and list(tmp_path.iterdir()) == [tmp_path / "c.json"]


def test_a_torn_last_csv_line_is_dropped_and_a_wrong_header_refused(tmp_path):
    path = tmp_path / "rows.csv"
    for i in range(3):
        append_csv_row(path, ["a", "b"], {"a": i, "b": 0.125 * i})
    path.write_text(path.read_text()[:-3])  # killed inside the last field
    assert read_csv_rows(path, ["a", "b"]) == [{"a": "0", "b": "0.0"}, {"a": "1", "b": "0.125"}]
    with pytest.raises(CsvError, match="has columns"):
        read_csv_rows(path, ["a", "c"])
