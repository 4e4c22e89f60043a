"""`python -m runners.mnist_bald` as a user meets it: help, a tiny real run, and clear errors that lose nothing."""

import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch

from acquire.data import load_split
from runners import mnist_bald
from tests.mnist_slices import colour_crops, write_image_folder, write_mnist_slice

TINY = ["--rounds", "2", "--per-round", "5", "--epochs", "1", "--repeats", "1", "--mc-samples", "3",
        "--pool-subset", "200", "--acquisitions", "random,bald", "--no-progress"]


def test_help_explains_every_flag():
    out = subprocess.run([sys.executable, "-m", "runners.mnist_bald", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--sources", "--acquisitions", "--rounds", "--per-round", "--epochs", "--repeats", "--mc-samples",
                 "--seed", "--device", "--data-dir", "--out", "--resume", "--preset", "quick", "--precision", "--model",
                 "gal_code", "gal_glorot", "gal_code_glorot"):
        assert flag in out


def test_quick_preset_values():
    config = mnist_bald.config_from_args(mnist_bald.build_parser().parse_args(["--preset", "quick", "--rounds", "3"]))
    assert (config.rounds, config.repeats, config.train.epochs, config.pool_subset) == (3, 2, 20, 2000)
    paper = mnist_bald.config_from_args(mnist_bald.build_parser().parse_args([]))
    assert (paper.rounds, paper.per_round, paper.repeats, paper.train.epochs, paper.mc_samples) == (50, 10, 4, 100, 20)
    assert paper.precision == "fp32"
    bf16 = mnist_bald.config_from_args(mnist_bald.build_parser().parse_args(["--precision", "bf16"]))
    assert bf16.precision == "bf16"
    assert paper.mc_masks == "shared"
    keras = mnist_bald.config_from_args(mnist_bald.build_parser().parse_args(["--mc-masks", "per_image"]))
    assert keras.mc_masks == "per_image"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, mnist_slice_dir):
    out = tmp_path_factory.mktemp("run")
    assert mnist_bald.main([*TINY, "--data-dir", str(mnist_slice_dir), "--out", str(out)]) == 0
    return out


def test_a_run_writes_config_csv_and_plot(finished_run):
    df = pd.read_csv(finished_run / "rounds.csv")
    assert len(df) == 4 and set(df["acquisition"]) == {"random", "bald"}
    assert (finished_run / "config.json").exists()
    assert (finished_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flags, message", [
    (["--acquisitions", "bald,nope"], "unknown acquisition function 'nope'"),
    (["--rounds", "0"], "rounds must be >= 1, got 0"),
    (["--rounds", "-3"], "rounds must be >= 1, got -3"),
    (["--initial", "-100"], "initial must be >= 0, got -100"),
    (["--acquisitions", ":"], "acquisition ':' is not a registered name nor package.module:function"),
    (["--generated-per-class", "5"], "--generated-per-class needs a GAN source set"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1", "--resume"],
     "no Ray cluster answers at 127.0.0.1:1 within 60 s"),
    (["--rounds", "3"], "already holds a run"),
    (["--per-round", "6", "--resume"], "different configuration"),
    (["--sources", "raw,nogan"], "unknown GAN family 'nogan'"),
    (["--per-round", "40000", "--pool-subset", "0", "--resume"], "need 80000 candidates"),
])
def test_bad_input_is_a_clear_error_and_loses_nothing(finished_run, mnist_slice_dir, capsys, flags, message):
    before = (finished_run / "rounds.csv").read_text()
    args = [*TINY, "--data-dir", str(mnist_slice_dir), "--out", str(finished_run), *flags]
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


SMALL = ["--rounds", "1", "--per-round", "5", "--epochs", "1", "--repeats", "1", "--mc-samples", "2", "--no-progress"]


@pytest.mark.parametrize("data, message", [
    (dict(test_labels=lambda y: y * 0 + 200), "the test set has labels from 200 to 200"),
])
def test_data_the_cnn_cannot_take_is_refused_before_a_run_directory_exists(tmp_path, mnist_dir, capsys, data, message):
    out = tmp_path / "out"
    data_dir = write_mnist_slice(tmp_path / "data", mnist_dir, **data)
    assert mnist_bald.main([*SMALL, "--data-dir", str(data_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--generated-per-class", "-1"], "--generated-per-class needs a GAN source set"),
    (["--acquisitions", "tests.plugins.broken_acquisition:NOT_A_FUNCTION"], "is a int, not a function"),
    (["--acquisitions", "tests.plugins.broken_acquisition:returns_none"], "returned None"),
    (["--acquisitions", "tests.plugins.broken_acquisition:raises"], "raised RuntimeError: shapes do not line up"),
    (["--acquisitions", "tests.plugins.broken_acquisition:nan_scores"], "NaN or infinite score"),
    (["--acquisitions", "tests.plugins.broken_acquisition:float_positions"], "positions of dtype torch.float32"),
    (["--resume"], "holds no run to continue"),
])
def test_bad_flags_are_one_line_errors_that_write_nothing(tmp_path, mnist_slice_dir, capsys, flags, message):
    out = tmp_path / "out"
    assert mnist_bald.main([*SMALL, "--data-dir", str(mnist_slice_dir), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("out_of", [lambda f: f, lambda f: f / "below"])
def test_an_out_that_is_or_lies_under_a_file_is_refused_before_loading_data(tmp_path, capsys, out_of):
    regular = tmp_path / "a_file"
    regular.write_text("keep me")
    assert mnist_bald.main([*SMALL, "--data-dir", str(tmp_path / "no_data"), "--out", str(out_of(regular))]) == 2
    assert "regular file" in capsys.readouterr().err and regular.read_text() == "keep me"


def test_model_choice_is_recorded_and_kept_on_resume(tmp_path, mnist_slice_dir, capsys):
    out = tmp_path / "keras_code"
    flags = [*TINY, "--rounds", "1", "--data-dir", str(mnist_slice_dir), "--out", str(out)]
    assert mnist_bald.main([*flags, "--model", "gal_code"]) == 0
    assert '"model": "acquire.model:new_gal_code_model"' in (out / "config.json").read_text()
    assert mnist_bald.main(["--resume", "--out", str(out), "--rounds", "2", "--data-dir", str(mnist_slice_dir),
                            "--no-progress"]) == 0
    before = (out / "rounds.csv").read_text()
    assert len(pd.read_csv(out / "rounds.csv")) == 4
    assert mnist_bald.main(["--resume", "--out", str(out), "--model", "gal", "--rounds", "3",
                            "--data-dir", str(mnist_slice_dir), "--no-progress"]) == 2
    assert "model: saved 'acquire.model:new_gal_code_model'" in capsys.readouterr().err
    assert (out / "rounds.csv").read_text() == before
    keras = tmp_path / "keras_init"
    assert mnist_bald.main([*TINY, "--rounds", "1", "--data-dir", str(mnist_slice_dir), "--out", str(keras),
                            "--model", "gal_code_glorot"]) == 0
    assert '"model": "acquire.model:new_gal_code_glorot_model"' in (keras / "config.json").read_text()


def test_resume_needs_only_out_and_rounds(tmp_path, mnist_slice_dir):
    once, stepwise = tmp_path / "once", tmp_path / "stepwise"
    flags = [*TINY, "--data-dir", str(mnist_slice_dir)]
    assert mnist_bald.main([*flags, "--rounds", "3", "--out", str(once)]) == 0
    assert mnist_bald.main([*flags, "--out", str(stepwise)]) == 0
    assert mnist_bald.main(["--resume", "--out", str(stepwise), "--rounds", "3", "--data-dir", str(mnist_slice_dir),
                            "--no-progress"]) == 0
    timing = ["train_seconds", "score_seconds", "eval_seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(stepwise / "rounds.csv").drop(columns=timing),
                                  pd.read_csv(once / "rounds.csv").drop(columns=timing))


def test_a_resume_never_imports_code_its_run_directory_names(finished_run, mnist_slice_dir, tmp_path, monkeypatch,
                                                             capsys):
    out = tmp_path / "clone"
    shutil.copytree(finished_run, out)
    marker = tmp_path / "marker"
    (out / "payload.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                    "def fn(probs_NTK):\n    return probs_NTK[:, 0, 0]\n")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "acquisitions": ["random", "payload:fn"]}))
    monkeypatch.chdir(out)  # python -m puts the working directory on sys.path
    monkeypatch.syspath_prepend(str(out))
    assert mnist_bald.main(["--resume", "--out", str(out), "--data-dir", str(mnist_slice_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "names the custom acquisition(s) ['payload:fn'], which this resume was not given" in err
    assert len(err.strip().splitlines()) == 1 and not marker.exists()


def test_a_folder_of_colour_images_of_four_classes_runs_with_a_cnn_built_for_them(tmp_path, fashion_dir):
    """Not MNIST: 3x24x24 RGB crops of 4 Fashion-MNIST classes as train/<class>/*.png and test/<class>/*.png; the
    classifier is built for the data's shape and classes, and the figure names the data set."""
    names = ["tshirt", "trouser", "pullover", "dress"]
    for split, count in (("train", 600), ("test", 200)):
        images = load_split(split, fashion_dir)
        keep = torch.nonzero(images.labels_N < 4).squeeze(1)[:count]
        four = images.subset(keep)
        write_image_folder(tmp_path / "clothes" / split, colour_crops(four, side=24), four.labels_N.numpy(), names)
    out = tmp_path / "out"
    assert mnist_bald.main([*SMALL, "--data-dir", str(tmp_path / "clothes"), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "clothes"
    rows = pd.read_csv(out / "rounds.csv")
    assert len(rows) == 2 and rows["balanced_accuracy"].between(0, 1).all()
    # a generator trained on the folder's labelled subset joins its pool (built for the data's shape and classes)
    from runners import train_gans
    gans = tmp_path / "gans"
    assert train_gans.main(["--gans", "small_dcgan", "--train-size", "40", "--recipe", "lowdata", "--set",
                            "small_dcgan.epochs=2", "--no-quality", "--data-dir", str(tmp_path / "clothes"),
                            "--out", str(gans)]) == 0
    assert mnist_bald.main([*SMALL, "--sources", "raw,small_dcgan", "--gan-dir", str(gans), "--generated-per-class",
                            "5", "--data-dir", str(tmp_path / "clothes"), "--out", str(tmp_path / "with_gan")]) == 0
    fingerprint = json.loads((tmp_path / "with_gan" / "config.json").read_text())["pool_fingerprint"]
    assert fingerprint["raw+small_dcgan"]["small_dcgan"]["images"] == 20  # 5 per class, 4 classes
