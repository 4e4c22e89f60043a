"""The shared main() guard: `kill` stops a run like Ctrl-C, user errors are one line, other errors propagate."""

import os
import signal

import pytest

from acquire.data import DataError
from runners.cli import resume_hint, run_guarded


def test_sigterm_stops_the_body_cleanly_with_the_resume_hint(tmp_path, capsys):
    steps = []

    def body():
        steps.append("started")
        os.kill(os.getpid(), signal.SIGTERM)
        steps.append("not reached")
        return 0

    before = signal.getsignal(signal.SIGTERM)
    (tmp_path / "config.json").write_text("{}")
    assert run_guarded(body, resume_hint("finished cells", "runners.ratio_sweep", tmp_path)) == 130
    assert steps == ["started"]
    err = capsys.readouterr().err
    assert f"finished cells are saved in {tmp_path}" in err
    assert f"python -m runners.ratio_sweep --resume --out {tmp_path}" in err
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


def test_user_errors_exit_2_with_one_line(capsys):
    def body():
        raise DataError("no MNIST in /nowhere; pass --data-dir")

    assert run_guarded(body, "unused") == 2
    assert capsys.readouterr().err.strip() == "error: no MNIST in /nowhere; pass --data-dir"


def test_bugs_are_not_hidden():
    def body():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_guarded(body, "unused")


def test_the_body_exit_code_is_returned():
    assert run_guarded(lambda: 0, "unused") == 0


def test_the_hint_says_nothing_was_saved_before_a_run_started(tmp_path):
    assert "nothing was saved" in resume_hint("rows", "runners.mnist_bald", tmp_path / "empty")()
