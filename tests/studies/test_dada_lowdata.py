"""`python -m runners.dada_lowdata` and studies.dada_lowdata.cells on a tiny slice of real MNIST: rows, plot,
phase-I cache, resume, errors."""

import gzip
import json
import struct

import pandas as pd
import pytest
import torch
from tests.acquire.test_precision import needs_bf16

from acquire.data import load_split
from studies.dada_lowdata import cells as lowdata
from runners import dada_lowdata

ALL_METHODS = ",".join(lowdata.METHODS)
TINY = ["--sizes", "2", "--repeats", "1", "--phase-one-iterations", "2", "--phase-two-steps", "3",
        "--methods", ALL_METHODS, "--no-progress"]
RESULT_COLUMNS = ["method", "n", "repeat", "accuracy", "balanced_accuracy", "train_images"]


def write_idx_gz(path, tensor):
    header = struct.pack(">BBBB", 0, 0, 0x08, tensor.dim()) + b"".join(struct.pack(">I", d) for d in tensor.shape)
    path.write_bytes(gzip.compress(header + tensor.to(torch.uint8).contiguous().numpy().tobytes()))


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory, mnist_dir):
    """The first 600 real training and 500 real test images, as an MNIST directory (keeps scoring cheap)."""
    directory = tmp_path_factory.mktemp("mnist")
    for split, count in (("train", 600), ("test", 500)):
        images = load_split(split, mnist_dir).subset(torch.arange(count))
        image_name, label_name = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                                  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}[split]
        write_idx_gz(directory / image_name, images.images_NCHW.squeeze(1))
        write_idx_gz(directory / label_name, images.labels_N)
    return directory


def run(out, data_dir, *flags):
    return dada_lowdata.main([*TINY, "--data-dir", str(data_dir), "--out", str(out), *flags])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_mnist):
    out = tmp_path_factory.mktemp("sweep")
    assert run(out, tiny_mnist) == 0
    return out


def test_help_lists_flags_methods_and_presets():
    text = dada_lowdata.build_parser().format_help()
    for word in ("--preset", "--sizes", "--methods", "--repeats", "--phase-one-iterations", "--phase-two-steps",
                 "--seed", "--device", "--data-dir", "--out", "--resume", "--no-progress", "--precision", "quick",
                 "examples", *lowdata.METHODS):
        assert word in text


def test_presets_and_explicit_flags():
    parse = dada_lowdata.build_parser().parse_args
    paper = dada_lowdata.config_from_args(parse([]))
    assert (paper.sizes, paper.repeats, paper.methods) == ([5, 10, 20, 50], 3, lowdata.DEFAULT_METHODS)
    quick = dada_lowdata.config_from_args(parse(["--preset", "quick", "--repeats", "2"]))
    assert (quick.sizes, quick.repeats, quick.phase_one_iterations, quick.phase_two_steps) == ([5, 20], 2, 150, 200)


def test_phase_one_runs_exactly_the_asked_iterations():
    config = lowdata.LowDataConfig(phase_one_iterations=300)
    for images in (20, 50, 100, 200, 300, 500, 1000):
        dada_config = config.phase_one(images)
        assert torch.tensor(dada_config.epochs * images / dada_config.batch_size).ceil() == 300


def test_sweep_writes_one_row_per_cell_a_plot_and_the_phase_one_cache(finished):
    df = pd.read_csv(finished / "results.csv")
    assert sorted(df["method"]) == sorted(lowdata.METHODS)
    assert (df["n"] == 2).all() and (df["repeat"] == 0).all() and (df["train_images"] == 20).all()
    assert df["accuracy"].between(0, 1).all() and df["balanced_accuracy"].between(0, 1).all()
    assert (finished / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (finished / "phase_one" / "n2_r0.pt").exists() and (finished / "config.json").exists()


def test_resume_of_a_finished_sweep_adds_nothing(finished, tiny_mnist):
    before = (finished / "results.csv").read_text()
    cache = finished / "phase_one" / "n2_r0.pt"
    stamp = cache.stat().st_mtime_ns
    argv = ["--resume", "--out", str(finished), "--data-dir", str(tiny_mnist), "--no-progress"]
    assert dada_lowdata.main(argv) == 0  # config.json supplies every setting
    assert (finished / "results.csv").read_text() == before and cache.stat().st_mtime_ns == stamp


def test_the_figure_title_names_the_data_set_from_its_directory(finished, tiny_mnist, monkeypatch):
    titles = []
    draw = dada_lowdata.plot_sweep
    monkeypatch.setattr(dada_lowdata, "plot_sweep", lambda *a, **k: titles.append(k["title"]) or draw(*a, **k))
    argv = ["--resume", "--out", str(finished), "--data-dir", str(tiny_mnist), "--no-progress"]
    assert dada_lowdata.main(argv) == 0
    assert titles == [f"{tiny_mnist.name}, low data: DADA vs. baselines (full test set)"]


def test_killed_sweep_resumes_to_the_same_rows(finished, tiny_mnist, tmp_path, monkeypatch):
    measure, calls = dada_lowdata.measure_cell, []

    def dies_on_fourth(*args, **kwargs):
        if len(calls) == 3:  # after C, C_augmented and DADA (which trained and cached phase I)
            raise KeyboardInterrupt
        calls.append(args[0])
        return measure(*args, **kwargs)

    monkeypatch.setattr(dada_lowdata, "measure_cell", dies_on_fourth)
    assert run(tmp_path, tiny_mnist) == 130
    assert len(pd.read_csv(tmp_path / "results.csv")) == 3
    monkeypatch.setattr(dada_lowdata, "measure_cell", measure)
    assert run(tmp_path, tiny_mnist, "--resume") == 0
    resumed, whole = pd.read_csv(tmp_path / "results.csv"), pd.read_csv(finished / "results.csv")
    assert resumed[RESULT_COLUMNS].equals(whole[RESULT_COLUMNS])


def test_sizes_beyond_the_training_split_are_refused_before_any_work(tiny_mnist, tmp_path, capsys):
    assert run(tmp_path / "out", tiny_mnist, "--sizes", "70") == 2
    assert "--sizes: n = 70 needs 70 images of every class" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_with_another_budget_is_refused_and_loses_nothing(finished, tiny_mnist, capsys):
    before = (finished / "results.csv").read_text()
    assert run(finished, tiny_mnist, "--phase-two-steps", "4", "--resume") == 2
    assert "different configuration" in capsys.readouterr().err
    assert (finished / "results.csv").read_text() == before


@needs_bf16
def test_a_bf16_sweep_records_its_precision_and_trains_phase_one_in_it(finished, tiny_mnist, tmp_path):
    assert run(tmp_path, tiny_mnist, "--precision", "bf16", "--methods", "C,DADA") == 0
    assert json.loads((tmp_path / "config.json").read_text())["precision"] == "bf16"
    df = pd.read_csv(tmp_path / "results.csv")
    assert sorted(df["method"]) == ["C", "DADA"] and df["accuracy"].between(0, 1).all()
    bf16, fp32 = (torch.load(out / "phase_one" / "n2_r0.pt", weights_only=True) for out in (tmp_path, finished))
    assert bf16["sha256"] != fp32["sha256"]  # the same phase I as `finished`, but for the precision
    assert all(tensor.dtype == fp32["generator"][name].dtype for name, tensor in bf16["generator"].items())


@pytest.mark.parametrize("damage", ["cut short", "garbage", "a changed weight", "no digest"])
def test_a_damaged_phase_one_cache_is_trained_again(tiny_train, tmp_path, capsys, damage):
    config = lowdata.LowDataConfig(sizes=[2], phase_one_iterations=2)
    subset = lowdata.real_subset(tiny_train, config, 2, 0)
    networks = lowdata.phase_one_networks(tmp_path, config, subset, 2, 0, "cpu")
    path = tmp_path / "phase_one" / "n2_r0.pt"
    saved = torch.load(path, weights_only=True)
    if damage == "cut short":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 64)
    else:
        changed = {**saved, "generator": {**saved["generator"]}}
        name = next(iter(changed["generator"]))
        changed["generator"][name] = changed["generator"][name] + 1
        if damage == "no digest":
            del changed["sha256"]
        torch.save(changed, path)
    again = lowdata.phase_one_networks(tmp_path, config, subset, 2, 0, "cpu")
    assert "training phase I again" in capsys.readouterr().err
    for network, retrained in zip(networks, again):
        assert all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), retrained.state_dict().values()))
    assert lowdata.load_phase_one(path)["generator"].keys() == saved["generator"].keys()
    assert not list(path.parent.glob(".*.partial"))


def test_an_intact_phase_one_cache_is_read_not_trained(tiny_train, tmp_path, monkeypatch):
    config = lowdata.LowDataConfig(sizes=[2], phase_one_iterations=2)
    subset = lowdata.real_subset(tiny_train, config, 2, 0)
    lowdata.phase_one_networks(tmp_path, config, subset, 2, 0, "cpu")
    monkeypatch.setattr(lowdata, "train_phase_one", None)  # calling it would fail
    gen, disc = lowdata.phase_one_networks(tmp_path, config, subset, 2, 0, "cpu")
    assert not gen.training and not disc.training


@pytest.mark.parametrize("method", ["C", "C_augmented"])
def test_a_cell_trains_on_the_run_device(tiny_train, tmp_path, method):
    """On the 'meta' device (shapes, no data) any CPU tensor mixed into phase II raises, as a CPU/CUDA mix would
    on a GPU; phase I's cache holds real bytes, so DADA's methods are covered by test_dada_phase_two."""
    config = lowdata.LowDataConfig(sizes=[2], repeats=1, phase_two_steps=2)
    classifier = lowdata.train_cell({"method": method, "n": 2, "repeat": 0}, config, tiny_train, tmp_path, "meta")
    assert {p.device.type for p in classifier.parameters()} == {"meta"} and not classifier.training
