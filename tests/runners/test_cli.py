"""The shared main() guard: `kill` stops a run like Ctrl-C, user errors are one line, other errors propagate; the
shared run flags."""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from acquire.data import DataError
from acquire.errors import UserError
from runners.cli import add_run_flags, float_list, int_list, numbers_may_be_negative, resume_hint, run_guarded

ROOT = Path(__file__).resolve().parents[2]


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


def test_a_value_error_raised_by_a_bug_keeps_its_traceback():
    """Only UserError is the user's to fix; a ValueError from inside torch is a bug and must not become exit 2."""
    import torch

    def body():
        torch.zeros(2, 3) @ torch.zeros(2, 3)  # a shape bug: torch raises RuntimeError
        return 0

    def body_value_error():
        int("not a number")  # a bug that raises a plain ValueError

    with pytest.raises(RuntimeError):
        run_guarded(body, "unused")
    with pytest.raises(ValueError) as caught:
        run_guarded(body_value_error, "unused")
    assert not isinstance(caught.value, UserError)


def test_a_user_error_exits_2():
    def body():
        raise UserError("--lr must be a finite number > 0, got inf")

    assert run_guarded(body, "unused") == 2


def test_the_body_exit_code_is_returned():
    assert run_guarded(lambda: 0, "unused") == 0


def test_the_hint_says_nothing_was_saved_before_a_run_started(tmp_path):
    assert "nothing was saved" in resume_hint("rows", "runners.mnist_bald", tmp_path / "empty")()


def test_run_flags_of_a_resumable_runner_leave_preset_and_seed_unset(tmp_path):
    parser = argparse.ArgumentParser()
    add_run_flags(parser, out=Path("runs/mnist_bald"), presets={"paper": {}, "quick": {}},
                  seed_help="base seed; every arm/round draw is derived from it (default: 0)",
                  resume_help="continue the run saved in --out with its saved settings")
    args = parser.parse_args([])
    assert (args.preset, args.seed, args.device, args.data_dir, args.out, args.resume, args.no_progress) == (
        None, None, "auto", None, Path("runs/mnist_bald"), False, False)
    args = parser.parse_args(["--preset", "quick", "--seed", "3", "--device", "cpu", "--data-dir", str(tmp_path),
                              "--out", "o", "--resume", "--no-progress"])
    assert (args.preset, args.seed, args.device, args.data_dir, args.out, args.resume, args.no_progress) == (
        "quick", 3, "cpu", tmp_path, Path("o"), True, True)
    text = parser.format_help()
    assert "every arm/round draw" in text and "(default: runs/mnist_bald)" in text and "the saved one" not in text
    with pytest.raises(SystemExit):
        parser.parse_args(["--preset", "full"])


def test_run_flags_of_a_trainer_have_its_defaults_and_no_resume():
    parser = argparse.ArgumentParser()
    add_run_flags(parser, out=Path("runs/gans"), presets=["full", "quick"], preset_default="full", seed_default=0,
                  preset_help="training budgets", seed_help="base seed (default: 0)", out_help="checkpoint directory",
                  progress=False)
    args = parser.parse_args([])
    assert (args.preset, args.seed, args.out) == ("full", 0, Path("runs/gans"))
    assert not hasattr(args, "resume") and not hasattr(args, "no_progress")
    assert "checkpoint directory (default: runs/gans)" in parser.format_help()


def test_run_flags_say_when_a_resume_keeps_the_saved_data_dir():
    parser = argparse.ArgumentParser()
    add_run_flags(parser, out=Path("o"), presets=["paper"], seed_help="seed", resume_help="resume",
                  resume_keeps_data_dir=True)
    assert "with --resume the saved one" in " ".join(parser.format_help().split())


def test_the_cli_precision_choices_are_the_engines():
    from acquire.precision import PRECISIONS
    from runners.cli import PRECISION_CHOICES
    assert tuple(PRECISIONS) == PRECISION_CHOICES


@pytest.mark.parametrize("argv, sizes, lr", [(["--sizes", "-10,30", "--lr", "-1e-3"], [-10, 30], -1e-3),
                                             (["--sizes", "-5", "--lr", "-.5"], [-5], -0.5),
                                             (["--lr", "-inf"], None, float("-inf"))])
def test_negative_numbers_are_values_not_flags(tmp_path, argv, sizes, lr):
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int_list)
    parser.add_argument("--lr", type=float)
    add_run_flags(parser, out=tmp_path, presets=["quick"], seed_help="seed", resume_help="resume")
    args = parser.parse_args(argv + ["--seed", "-1"])
    assert (args.sizes, args.lr, args.seed) == (sizes, lr, -1)


def test_a_parser_of_its_own_reads_negative_lists_and_still_refuses_unknown_flags(capsys):
    parser = numbers_may_be_negative(argparse.ArgumentParser())
    parser.add_argument("--errors", type=float_list)
    assert parser.parse_args(["--errors", "-0.5,1e-3"]).errors == [-0.5, 1e-3]
    with pytest.raises(SystemExit):
        parser.parse_args(["-x"])
    assert "unrecognized arguments: -x" in capsys.readouterr().err


def test_the_data_dir_help_names_every_format():
    parser = argparse.ArgumentParser()
    add_run_flags(parser, out=Path("o"), presets=["quick"], seed_help="seed")
    text = " ".join(parser.format_help().split())
    assert all(part in text for part in ("MNIST-format IDX", "1 or 3 channels", ".npz", "train/<class>/*.png|jpg",
                                         "one <class>/ folder per class", "seeded and stratified"))


@pytest.mark.parametrize("out", ["loop", "x" * 300])  # the other causes: tests/acquire/test_rundir.py
def test_an_out_the_os_cannot_hold_stops_a_runner_with_one_line_and_exit_2(tmp_path, out):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    done = subprocess.run([sys.executable, "-m", "runners.mnist_bald", "--preset", "quick", "--data-dir",
                           str(tmp_path / "no-data"), "--out", str(tmp_path / out)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "--out" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "loop"]
