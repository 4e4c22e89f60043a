"""`python -m runners.mnist_bald` as a user meets it: help, a tiny real run, and clear errors that lose nothing."""

import subprocess
import sys

import pandas as pd
import pytest

from runners import mnist_bald

TINY = ["--rounds", "2", "--per-round", "5", "--epochs", "1", "--repeats", "1", "--mc-samples", "3",
        "--pool-subset", "200", "--acquisitions", "random,bald", "--no-progress"]


def test_help_explains_every_flag():
    out = subprocess.run([sys.executable, "-m", "runners.mnist_bald", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--sources", "--acquisitions", "--rounds", "--per-round", "--epochs", "--repeats", "--mc-samples",
                 "--seed", "--device", "--data-dir", "--out", "--resume", "--preset", "quick"):
        assert flag in out


def test_quick_preset_values():
    config = mnist_bald.config_from_args(mnist_bald.build_parser().parse_args(["--preset", "quick", "--rounds", "3"]))
    assert (config.rounds, config.repeats, config.train.epochs, config.pool_subset) == (3, 2, 20, 2000)
    paper = mnist_bald.config_from_args(mnist_bald.build_parser().parse_args([]))
    assert (paper.rounds, paper.per_round, paper.repeats, paper.train.epochs, paper.mc_samples) == (50, 10, 4, 100, 20)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("run")
    assert mnist_bald.main([*TINY, "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
    return out


def test_a_run_writes_config_csv_and_plot(finished_run):
    df = pd.read_csv(finished_run / "rounds.csv")
    assert len(df) == 4 and set(df["acquisition"]) == {"random", "bald"}
    assert (finished_run / "config.json").exists()
    assert (finished_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flags, message", [
    (["--acquisitions", "bald,nope"], "unknown acquisition function 'nope'"),
    (["--rounds", "0"], "rounds must be a positive integer"),
    (["--rounds", "-3"], "rounds must be a positive integer"),
    (["--rounds", "3"], "already holds a run"),
    (["--per-round", "6", "--resume"], "different configuration"),
    (["--sources", "raw,nogan"], "unknown GAN family 'nogan'"),
    (["--per-round", "40000", "--pool-subset", "0", "--resume"], "need 80000 candidates"),
])
def test_bad_input_is_a_clear_error_and_loses_nothing(finished_run, mnist_dir, capsys, flags, message):
    before = (finished_run / "rounds.csv").read_text()
    args = [*TINY, "--data-dir", str(mnist_dir), "--out", str(finished_run), *flags]
    assert mnist_bald.main(args) == 2
    assert message in capsys.readouterr().err
    assert (finished_run / "rounds.csv").read_text() == before


def test_missing_data_names_where_it_looked(tmp_path, capsys):
    assert mnist_bald.main([*TINY, "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "GAN_ACQUIRE_DATA" in err


def test_untrained_gans_are_all_named_with_the_one_command_that_trains_them(tmp_path, capsys):
    out = tmp_path / "o"
    args = [*TINY, "--sources", "raw,small_dcgan,dada", "--gan-dir", str(tmp_path / "gans"), "--out", str(out)]
    assert mnist_bald.main(args) == 2
    err = capsys.readouterr().err
    assert f"python -m runners.train_gans --gans small_dcgan,dada --out {tmp_path / 'gans'}" in err
    assert not out.exists()  # refused before any work
