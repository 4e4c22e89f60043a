"""--out checked before any work: every OS reason it cannot hold a run is one line naming the path and the cause."""

import errno
import os
from types import SimpleNamespace

import pytest

from acquire.files import StorageError
from acquire.rundir import RunDir, RunDirectoryError, check_out_dir
from runners.cli import run_guarded


def test_a_dangling_symlink_as_out_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StorageError, match=r"is a dangling symlink \(to .*nowhere, which does not exist\)"):
        check_out_dir(tmp_path / "out", resume=False)
    with pytest.raises(StorageError, match="lies under .*out, which is a dangling symlink"):
        RunDir(tmp_path / "out" / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_looping_symlink_as_out_is_refused(tmp_path):
    (tmp_path / "out").symlink_to(tmp_path / "out")
    with pytest.raises(StorageError, match="is a symlink that loops"):
        check_out_dir(tmp_path / "out", resume=False)


def test_a_name_too_long_is_refused(tmp_path):
    with pytest.raises(StorageError, match="too long"):
        check_out_dir(tmp_path / ("x" * 300), resume=False)


def test_a_path_under_proc_is_refused():
    with pytest.raises(StorageError, match="lies under /proc, a virtual file system"):
        check_out_dir("/proc/gan-acquire-out", resume=False)


@pytest.mark.parametrize("flags, cause", [(os.ST_RDONLY, "read-only file system"), (0, "permission denied")])
def test_a_read_only_or_forbidden_parent_is_refused(tmp_path, monkeypatch, flags, cause):
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as root, chmod 0o500 would not stop a write
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_flag=flags))
    with pytest.raises(StorageError, match=f"cannot write to {tmp_path / 'out'}: .*{cause}"):
        check_out_dir(tmp_path / "out", resume=False)


def test_the_lock_that_cannot_be_created_is_one_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(StorageError, match=r"cannot write .*\.lock: .* read-only file system"):
        RunDir(tmp_path / "out")


def test_a_regular_file_as_out_is_still_a_run_directory_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirectoryError, match="lies under .*f, which is a regular file"):
        check_out_dir(tmp_path / "f" / "out", resume=False)


def test_an_os_failure_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "out").symlink_to(tmp_path / "out")
    assert run_guarded(lambda: check_out_dir(tmp_path / "out", resume=False), "") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "loops" in err and "Traceback" not in err


def test_a_config_that_cannot_be_read_says_why(tmp_path, monkeypatch):
    from acquire.rundir import read_json

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(RunDirectoryError, match="dir.json is damaged"):
        read_json(tmp_path / "dir.json")

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("pathlib.Path.read_text", refuse)
    with pytest.raises(StorageError, match=r"cannot read .*config.json: permission denied"):
        read_json(tmp_path / "config.json")
