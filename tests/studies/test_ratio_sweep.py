"""`python -m runners.ratio_sweep` and studies.ratio_sweep.cells: the cells, the paired real subsets, refusals, and
a tiny real run with resume."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from tests.acquire.test_precision import needs_bf16

from acquire.data import MNIST_FILES, ImageSet, load_split
from acquire.inference import predict
from acquire.networks import GalCNN
from studies.ratio_sweep.cells import BASELINE, COLUMNS, CellRunner, RatioSweepConfig
from acquire.seeding import derive_seed
from gans.checkpoint import save_checkpoint
from gans.registry import get_family
from runners import ratio_sweep

TINY = ["--gans", "small_dcgan", "--sizes", "20", "--ratios", "0,0.5,1", "--modes", "replace,add", "--repeats", "1",
        "--train-images", "40", "--no-progress"]


def config(**changes) -> RatioSweepConfig:
    return RatioSweepConfig(**{**ratio_sweep.DEFAULTS, **changes})


def no_pools(gan, per_class, seed):
    raise AssertionError(f"{gan}'s pool was not expected to be drawn")


def write_idx(path, array: np.ndarray) -> None:
    """An uncompressed uint8 IDX file (acquire.data reads the MNIST names without .gz too)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
                     + array.tobytes())


@pytest.fixture(scope="module")
def mnist_slice(tmp_path_factory, mnist_dir):
    """The first 1,000 real training and 200 real test images, as an MNIST directory."""
    directory = tmp_path_factory.mktemp("mnist_slice")
    for split, count in (("train", 1000), ("test", 200)):
        images = load_split(split, mnist_dir).subset(torch.arange(count))
        image_name, label_name = (name.removesuffix(".gz") for name in MNIST_FILES[split])
        write_idx(directory / image_name, images.images_NCHW[:, 0].numpy())
        write_idx(directory / label_name, images.labels_N.numpy())
    return directory


def save_tiny_gan(gan_dir, seed: int = 0):
    """An untrained small_dcgan checkpoint: enough to sample labelled images from."""
    family = get_family("small_dcgan")
    gan_config = family.config_class()
    torch.manual_seed(seed)
    data = ImageSet(torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.arange(10))
    return save_checkpoint(gan_dir / "small_dcgan.pt", "small_dcgan", family.build(gan_config), gan_config, data)


@pytest.fixture(scope="module")
def gan_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gans")
    save_tiny_gan(directory)
    return directory


def test_help_explains_every_flag():
    out = subprocess.run([sys.executable, "-m", "runners.ratio_sweep", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--gans", "--gan-dir", "--sizes", "--ratios", "--modes", "--repeats", "--train-images",
                 "--batch-size", "--lr", "--seed", "--device", "--data-dir", "--out", "--resume", "--no-progress",
                 "--preset", "quick", "examples", "--precision"):
        assert flag in out


def test_presets_and_explicit_flags(gan_dir):
    parse = ratio_sweep.build_parser().parse_args
    quick = ratio_sweep.config_from_args(parse(["--preset", "quick", "--gans", "small_dcgan",
                                                "--gan-dir", str(gan_dir), "--repeats", "2"]))
    assert (quick.sizes, quick.ratios, quick.repeats, quick.train_images) == ([500], [0.0, 0.5, 1.0], 2, 10_000)
    assert quick.gan_checkpoints == {"small_dcgan": json.loads((gan_dir / "small_dcgan.json").read_text())[
        "weights_sha256"]}
    paper = config()
    assert (paper.gans, paper.sizes, paper.modes, paper.repeats) == (ratio_sweep.ALL_GANS, [500, 5000],
                                                                     ["replace", "add"], 3)


def test_cells_run_r0_once_per_size_and_repeat():
    cells = config().cells()
    assert len(cells) == 2 * 3 * (1 + 4 * 2 * 5)
    baselines = [c for c in cells if c["ratio"] == 0.0]
    assert len(baselines) == 6 and all(c["gan"] == c["mode"] == BASELINE for c in baselines)
    assert [c["repeat"] for c in cells] == sorted(c["repeat"] for c in cells)  # whole repeats first
    assert config().pool_per_class() == 500 and config(sizes=[500], ratios=[0.0, 0.5]).pool_per_class() == 25


def test_every_gan_of_a_repeat_gets_the_same_real_images(tiny_train, tiny_test):
    runner = CellRunner(config(gans=["small_dcgan", "dada"]), tiny_train, tiny_test, "cpu", no_pools)
    fake_pool = ImageSet(torch.full((100, 1, 28, 28), 255, dtype=torch.uint8), torch.arange(10).repeat(10))
    runner.pools = {("small_dcgan", 0): fake_pool, ("dada", 0): fake_pool}
    cell = {"size": 100, "ratio": 0.6, "repeat": 0}
    baseline, _, _ = runner.training_set({**cell, "gan": "none", "mode": "none", "ratio": 0.0})
    kept = [runner.training_set({**cell, "gan": gan, "mode": "replace"})[0].images_NCHW[:40]
            for gan in ("small_dcgan", "dada")]
    assert torch.equal(kept[0], kept[1])
    assert all(any(torch.equal(image, other) for other in baseline.images_NCHW) for image in kept[0])
    other_repeat, _, _ = runner.training_set({**cell, "gan": "none", "mode": "none", "ratio": 0.0, "repeat": 1})
    assert not torch.equal(other_repeat.images_NCHW, baseline.images_NCHW)


def test_a_repeat_draws_each_gan_pool_once_from_the_pool_source(tiny_train, tiny_test):
    calls = []

    def source(gan, per_class, seed):
        calls.append((gan, per_class, seed))
        return ImageSet(torch.zeros(10 * per_class, 1, 28, 28, dtype=torch.uint8), torch.arange(10).repeat(per_class))

    sweep = config(sizes=[100], ratios=[0.0, 0.5], seed=4)
    runner = CellRunner(sweep, tiny_train, tiny_test, "cpu", source)
    assert runner.pool("dada", 0) is runner.pool("dada", 0) and len(runner.pool("dada", 0)) == 50
    runner.pool("dada", 1)
    assert calls == [("dada", 5, derive_seed(4, "repeat", 0)), ("dada", 5, derive_seed(4, "repeat", 1))]
    assert list(runner.pools) == [("dada", 1)]  # an earlier repeat's pools are let go


def test_sizes_beyond_the_training_split_are_refused():
    labels_N = torch.arange(10).repeat(3)  # 3 images of every class
    config(sizes=[30]).check_fits(labels_N)
    with pytest.raises(ValueError, match="40 class-balanced images need 4 of every class"):
        config(sizes=[10, 40]).check_fits(labels_N)


def test_untrained_gan_is_refused_before_any_work_with_the_train_command(tmp_path, gan_dir, capsys):
    out = tmp_path / "out"
    assert ratio_sweep.main([*TINY, "--gans", "small_dcgan,dada", "--gan-dir", str(gan_dir), "--out", str(out)]) == 2
    assert f"python -m runners.train_gans --gans dada --out {gan_dir}" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, mnist_slice, gan_dir):
    out = tmp_path_factory.mktemp("sweep")
    assert ratio_sweep.main([*TINY, "--data-dir", str(mnist_slice), "--gan-dir", str(gan_dir), "--out", str(out)]) == 0
    return out


def test_a_sweep_writes_one_row_per_cell_and_both_figures(finished):
    df = pd.read_csv(finished / "results.csv")
    assert list(df.columns) == COLUMNS and len(df) == 5
    counts = {(row.mode, row.ratio): (row.n_real, row.n_generated) for row in df.itertuples()}
    assert counts == {("none", 0.0): (20, 0), ("replace", 0.5): (10, 10), ("replace", 1.0): (0, 20),
                      ("add", 0.5): (20, 10), ("add", 1.0): (20, 20)}
    n_train = df["n_real"] + df["n_generated"]
    assert (df["epochs"] == (40 / n_train).round().clip(lower=1)).all()  # 40 images shown, in whole epochs
    assert (df["images_shown"] == df["epochs"] * n_train).all() and df["accuracy"].between(0, 1).all()
    for mode in ("replace", "add"):
        assert (finished / f"accuracy_{mode}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_titles_name_the_data_set_from_its_directory(finished, mnist_slice, monkeypatch):
    titles = []
    draw = ratio_sweep.plot_sweep
    monkeypatch.setattr(ratio_sweep, "plot_sweep", lambda *a, **k: titles.append(k["title"]) or draw(*a, **k))
    assert ratio_sweep.main(["--resume", "--out", str(finished), "--data-dir", str(mnist_slice), "--no-progress"]) == 0
    assert len(titles) == 2 and all(title.endswith(f"({mnist_slice.name}, Gal CNN)") for title in titles)


def test_resume_adds_nothing_then_extends_repeats_like_an_uninterrupted_run(finished, mnist_slice, gan_dir, tmp_path):
    args = [*TINY, "--data-dir", str(mnist_slice), "--gan-dir", str(gan_dir)]
    before = (finished / "results.csv").read_text()
    assert json.loads((finished / "config.json").read_text())["gan_dir"] == str(gan_dir)  # as given
    # config.json supplies every setting (the GANs' directory too)
    assert ratio_sweep.main(["--resume", "--out", str(finished), "--data-dir", str(mnist_slice), "--no-progress"]) == 0
    assert (finished / "results.csv").read_text() == before
    resumed = tmp_path / "resumed"
    whole = tmp_path / "whole"
    assert ratio_sweep.main([*args, "--out", str(resumed)]) == 0
    assert ratio_sweep.main(["--out", str(resumed), "--resume", "--repeats", "2", "--data-dir", str(mnist_slice),
                             "--no-progress"]) == 0
    assert ratio_sweep.main([*args, "--out", str(whole), "--repeats", "2"]) == 0
    drop = ["train_seconds"]
    assert pd.read_csv(resumed / "results.csv").drop(columns=drop).equals(
        pd.read_csv(whole / "results.csv").drop(columns=drop))


@needs_bf16
def test_a_bf16_sweep_records_its_precision_and_trains_float32_weights_under_autocast(
        tmp_path, mnist_slice, gan_dir, tiny_train, tiny_test):
    out = tmp_path / "bf16"
    assert ratio_sweep.main([*TINY, "--precision", "bf16", "--data-dir", str(mnist_slice), "--gan-dir", str(gan_dir),
                             "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 5 and df["accuracy"].between(0, 1).all()
    assert ratio_sweep.main(["--resume", "--out", str(out), "--data-dir", str(mnist_slice), "--no-progress"]) == 0
    cell = {"size": 100, "mode": "none", "gan": "none", "ratio": 0.0, "repeat": 0}
    weights = []
    for precision in ("fp32", "bf16"):
        runner = CellRunner(config(train_images=100, precision=precision), tiny_train, tiny_test, "cpu", no_pools)
        model, _, _ = runner.fit(cell, runner.training_set(cell)[0])
        weights.append(model.fc1.weight)
    assert weights[1].dtype == torch.float32 and not torch.equal(*weights)


def test_resume_refuses_a_retrained_gan(finished, mnist_slice, tmp_path, capsys):
    retrained = tmp_path / "gans"
    retrained.mkdir()
    save_tiny_gan(retrained, seed=1)
    args = [*TINY, "--data-dir", str(mnist_slice), "--gan-dir", str(retrained), "--out", str(finished), "--resume"]
    assert ratio_sweep.main(args) == 2
    assert "gan_checkpoints" in capsys.readouterr().err


def test_a_cell_builds_its_training_set_and_trains_on_the_run_device(tiny_train, tiny_test):
    """On the 'meta' device (shapes, no data) any CPU tensor mixed into the training set or the training
    raises, as a CPU/CUDA mix would on a GPU."""
    runner = CellRunner(config(train_images=200), tiny_train, tiny_test, "meta", no_pools)
    cell = {"size": 100, "mode": "none", "gan": "none", "ratio": 0.0, "repeat": 0}
    images, n_real, n_generated = runner.training_set(cell)
    assert images.images_NCHW.device.type == images.labels_N.device.type == "meta"
    assert (len(images), n_real, n_generated) == (100, 100, 0)
    model, epochs, _ = runner.fit(cell, images)
    assert {p.device.type for p in model.parameters()} == {"meta"} and epochs == 2
    assert predict(model, runner.test.images_NCHW).device.type == "meta"


def test_a_cell_trains_the_network_of_the_model_factory_it_is_given(tiny_train, tiny_test):
    built = []

    def small(seed, device):
        built.append(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10)).to(device)

    cell = {"size": 100, "mode": "none", "gan": "none", "ratio": 0.0, "repeat": 0}
    runner = CellRunner(config(train_images=100), tiny_train, tiny_test, "cpu", no_pools, model_factory=small)
    row = runner(cell)
    assert built == [derive_seed(0, 100, 0, "init")] and 0 <= row["accuracy"] <= 1
    default = CellRunner(config(train_images=100), tiny_train, tiny_test, "cpu", no_pools)
    assert isinstance(default.fit(cell, default.training_set(cell)[0])[0], GalCNN)


def test_model_flag_trains_that_network_records_it_and_resume_keeps_it(tmp_path, mnist_slice, gan_dir, capsys):
    out = tmp_path / "code_net"
    assert ratio_sweep.main([*TINY, "--model", "gal_code", "--data-dir", str(mnist_slice), "--gan-dir", str(gan_dir),
                             "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model"] == "gal_code"
    rows = pd.read_csv(out / "results.csv")
    default = tmp_path / "gal"
    assert ratio_sweep.main([*TINY, "--data-dir", str(mnist_slice), "--gan-dir", str(gan_dir), "--out",
                             str(default)]) == 0
    assert not pd.read_csv(default / "results.csv")["accuracy"].equals(rows["accuracy"])  # another network
    assert ratio_sweep.main(["--resume", "--out", str(out), "--model", "gal", "--data-dir", str(mnist_slice),
                             "--no-progress"]) == 2
    assert "--model" in capsys.readouterr().err
