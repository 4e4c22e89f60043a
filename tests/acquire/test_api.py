"""The public API: README's example runs as written, 3-channel 32x32 data with K = 4 runs end to end through
the engine, and data or models that do not fit are refused before anything is written."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import acquire
from acquire.loop import CSV_COLUMNS, DEFAULT_MODEL, DEFAULT_TRAINER, RunDirectoryError
from acquire.rundir import RunDir

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The first python block of README's section on the Python API."""
    text = README.read_text()
    section = text[text.index("## Your own data and models (Python API)"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory):
    """The directory README's example ran in, and the names it defined."""
    directory = tmp_path_factory.mktemp("readme")
    before, threads = Path.cwd(), torch.get_num_threads()
    torch.set_num_threads(1)
    namespace = {"__name__": "readme_example"}
    try:
        os.chdir(directory)
        exec(compile(readme_example(), str(README), "exec"), namespace)
    finally:
        os.chdir(before)
        torch.set_num_threads(threads)
    return directory, namespace


@pytest.mark.parametrize("run, model", [("toy_gal", DEFAULT_MODEL), ("toy_small_cnn", "readme_example:small_cnn")])
def test_readme_example_writes_what_the_cli_writes_and_returns_its_rows(example_dir, run, model):
    directory, _ = example_dir
    out = directory / "runs" / run
    for name in ("config.json", "rounds.csv", "curves.png", "state/raw__bald__1.json"):
        assert (out / name).is_file(), name
    rows = pd.read_csv(out / "rounds.csv")
    assert list(rows.columns) == CSV_COLUMNS and len(rows) == 2 * 2 * 3  # acquisitions x repeats x rounds
    assert rows["balanced_accuracy"].between(0, 1).all()
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["trainer"]) == (model, DEFAULT_TRAINER)
    with RunDir(out):  # the lock was released when the with-block ended
        pass


def test_readme_example_returns_the_dataframe_of_its_csv(example_dir):
    directory, namespace = example_dir
    pd.testing.assert_frame_equal(namespace["rows"], pd.read_csv(directory / "runs" / "toy_small_cnn" / "rounds.csv"))


def test_three_channel_images_build_gal_cnn_for_their_shape_and_classes_and_resume(example_dir, one_thread,
                                                                                   tmp_path):
    directory, namespace = example_dir
    out = shutil.copytree(directory / "runs" / "toy_gal", tmp_path / "toy_gal")
    resumed = acquire.ExperimentConfig(**{**namespace["config"].__dict__, "rounds": 4})
    with acquire.Experiment(resumed, namespace["pool"], namespace["test"], out, device="cpu",
                            resume=True) as experiment:
        model = experiment.loop.rounds.model_factory(0, torch.device("cpu"))
        assert (model.image_shape, model.fc2.out_features) == ((3, 32, 32), 4)
        assert experiment.run(progress=False)["round"].tolist() == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    refusal = "model: saved 'acquire.model:new_model', now 'readme_example:small_cnn'"
    with pytest.raises(RunDirectoryError, match=refusal):
        acquire.Experiment(resumed, namespace["pool"], namespace["test"], out, model=namespace["small_cnn"],
                           device="cpu", resume=True)


def images(n, shape=(3, 32, 32), classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return acquire.as_image_set(torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=generator),
                                torch.arange(n) % classes)


def flat_net(inputs, outputs, dropout=True):
    def factory(seed, device):
        layers = [nn.Flatten(), nn.Dropout(0.5)] if dropout else [nn.Flatten()]
        return nn.Sequential(*layers, nn.Linear(inputs, outputs)).to(device)
    return factory


def softmax_net(inputs, outputs):
    def factory(seed, device):
        return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(inputs, outputs), nn.Softmax(dim=1)).to(device)
    return factory


CONFIG = dict(rounds=1, per_round=4, repeats=1, mc_samples=3, train=acquire.TrainConfig(epochs=1))


@pytest.mark.parametrize("pool, test, settings, message", [
    (images(40), images(8, classes=5), dict(model=flat_net(3072, 4)),
     r"the test set has labels from 0 to 4, but the model has 4 classes"),
    (images(40, shape=(1, 28, 28)), images(8), {}, r"one image shape.*\[1, 28, 28\].*the test set \[3, 32, 32\]"),
    (images(40, shape=(3, 28, 32)), images(8, shape=(3, 28, 32)), {}, "square images"),
    (images(40), images(8), dict(model=flat_net(784, 4)), r"cannot take images \[C,H,W\] = \[3, 32, 32\]"),
    (images(40), images(8), dict(model=flat_net(3072, 4, dropout=False)), "no nn.Dropout layer"),
    (images(40), images(8), dict(initial=6), "multiple of the 4 classes"),
    (images(40), images(8), dict(dense_l2_c=3.5, model=flat_net(3072, 4)), "dense_l2_c=3.5"),
    (images(40), images(8), dict(model=softmax_net(3072, 4)),
     r"the model's outputs are probabilities .* drop the final softmax"),
    (images(40).images_NCHW.numpy(), images(8), {},
     r"pool must be an ImageSet or an \(images, labels\) pair, got ndarray \(images without labels\)"),
    ({"raw": images(40)}, images(8), {}, "pools must map source-set names to CandidatePools"),
])
def test_data_or_models_that_do_not_fit_are_refused_before_anything_is_written(pool, test, settings, message,
                                                                                tmp_path):
    settings = dict(settings)
    model = settings.pop("model", None)
    train = acquire.TrainConfig(epochs=1, dense_l2_c=settings.pop("dense_l2_c", 0.0))
    config = acquire.ExperimentConfig(**{**CONFIG, "train": train, **settings})
    with pytest.raises(ValueError, match=message):
        acquire.Experiment(config, pool, test, tmp_path, model=model, device="cpu")
    assert not any(tmp_path.iterdir())


def test_a_model_without_dropout_runs_acquisitions_that_need_no_mc(tmp_path, one_thread):
    config = acquire.ExperimentConfig(**{**CONFIG, "acquisitions": ["random"]})
    with acquire.Experiment(config, images(40), images(8), tmp_path, model=flat_net(3072, 4, dropout=False),
                            device="cpu") as experiment:
        rows = experiment.run(progress=False)
    assert rows["train_size"].tolist() == [4]


def test_an_images_labels_pair_is_a_pool_and_missing_classes_warn_in_one_line(tmp_path, one_thread):
    pool, test = images(40, classes=3), images(8)  # the pool lacks class 3
    config = acquire.ExperimentConfig(**{**CONFIG, "acquisitions": ["random"]})
    with pytest.warns(UserWarning, match=r"^the pool of 'raw' lacks classes \[3\] that the test set has$"):
        experiment = acquire.Experiment(config, (pool.images_NCHW.numpy(), pool.labels_N.numpy()),
                                        (test.images_NCHW, test.labels_N), tmp_path, model=flat_net(3072, 4),
                                        device="cpu")
    with experiment:
        assert experiment.run(progress=False)["train_size"].tolist() == [4]


def relabelled(images_set, labels):
    return acquire.as_image_set(images_set.images_NCHW, labels)


@pytest.mark.parametrize("labels, outputs, message", [
    (lambda y: 2 * y, 7, r"^classes \[1, 3, 5\] occur neither in the pools nor in the test set, yet count among the 7 "
                         r"classes 0\.\.6 \(the largest label \+ 1\): number the classes 0\.\.K-1 without gaps"),
    (lambda y: y, 7, r"^the model has 7 outputs but the data 4 classes \(labels 0\.\.3\), so outputs 4\.\.6 are "
                     r"classes no image has; give a model with 4 outputs$"),
], ids=["labels with gaps", "model wider than the data"])
def test_classes_no_image_has_warn_in_one_line(labels, outputs, message, tmp_path):
    pool, test = images(40), images(8)
    config = acquire.ExperimentConfig(**{**CONFIG, "acquisitions": ["random"]})
    with pytest.warns(UserWarning) as caught:
        acquire.Experiment(config, relabelled(pool, labels(pool.labels_N)), relabelled(test, labels(test.labels_N)),
                           tmp_path, model=flat_net(3072, outputs), device="cpu").close()
    assert [str(w.message) for w in caught if re.search(message, str(w.message))] and len(caught) == 1
    assert "\n" not in str(caught[0].message)


def test_mnist_shaped_data_keeps_the_paper_defaults(tiny_train, tiny_test, tmp_path):
    with acquire.Experiment(acquire.ExperimentConfig(**CONFIG), tiny_train, tiny_test, tmp_path,
                            device="cpu") as experiment:
        assert experiment.config.model == DEFAULT_MODEL and experiment.loop.rounds.num_classes == 10
        model = experiment.loop.rounds.model_factory(0, torch.device("cpu"))
    assert model.image_shape == (1, 28, 28) and model.fc2.out_features == 10


def test_import_acquire_is_lazy_and_lists_its_api():
    import subprocess
    import sys
    code = "import sys, acquire; assert 'torch' not in sys.modules; print(sorted(acquire.__all__))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Experiment" in names and "as_image_set" in names
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        acquire.nonsense  # noqa: B018
    assert np.array_equal(acquire.as_image_set(np.zeros((1, 2, 2)), [0]).images_NCHW.numpy(), np.zeros((1, 1, 2, 2)))
