"""The active loop on tiny real-MNIST slices: the CSV, resume after a kill, its guards, and runs saved by earlier
versions."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from acquire.loop import arm as loop_module
from acquire.loop import TIMING_COLUMNS, ActiveLearningRun, ExperimentConfig, RunDirectoryError
from acquire.training import TrainConfig
from acquire.pool import CandidatePool


def tiny_config(**changes):
    values = dict(acquisitions=["random", "bald"], rounds=3, per_round=5, repeats=2, mc_samples=4,
                  pool_subset=120, train=TrainConfig(epochs=2, batch_size=16))
    values.update(changes)
    return ExperimentConfig(**values)


def run(tiny_train, tiny_test, out, config=None, resume=False):
    pools = {"raw": CandidatePool({"raw": tiny_train})}
    return ActiveLearningRun(config or tiny_config(), pools, tiny_test, out, resume=resume)


def results(out):
    return pd.read_csv(out / "rounds.csv").drop(columns=TIMING_COLUMNS)


def test_every_round_of_every_arm_is_a_csv_row(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path).run(progress=False)
    df = pd.read_csv(tmp_path / "rounds.csv")
    assert len(df) == 2 * 2 * 3
    assert list(df["round"]) == [1] * 4 + [2] * 4 + [3] * 4  # arms advance in lockstep
    assert (df["train_size"] == df["round"] * 5).all() and (df["n_real"] == df["train_size"]).all()
    assert (df["n_generated"] == 0).all() and (df["acquired_by_source"] == "raw=" + df["train_size"].astype(str)).all()
    assert df["balanced_accuracy"].between(0, 1).all()
    assert json.loads((tmp_path / "config.json").read_text())["rounds"] == 3


def test_a_killed_run_resumes_to_the_same_rows(tiny_train, tiny_test, tmp_path, monkeypatch):
    run(tiny_train, tiny_test, tmp_path / "whole").run(progress=False)

    calls = {"n": 0}
    real_train = loop_module.train_classifier

    def dies_on_the_seventh_round(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(loop_module, "train_classifier", dies_on_the_seventh_round)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_train, tiny_test, tmp_path / "killed").run(progress=False)
    assert len(pd.read_csv(tmp_path / "killed" / "rounds.csv")) == 6  # nothing computed is lost
    monkeypatch.setattr(loop_module, "train_classifier", real_train)
    run(tiny_train, tiny_test, tmp_path / "killed", resume=True).run(progress=False)
    pd.testing.assert_frame_equal(results(tmp_path / "killed"), results(tmp_path / "whole"))


def test_resume_may_extend_rounds_but_not_change_the_protocol(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1)).run(progress=False)
    before = (tmp_path / "rounds.csv").read_text()
    with pytest.raises(RunDirectoryError, match="--resume"):
        run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1))
    with pytest.raises(RunDirectoryError, match="per_round"):
        run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1, per_round=4), resume=True)
    with pytest.raises(RunDirectoryError, match="precision: saved 'fp32', now 'bf16'"):
        run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1, precision="bf16"), resume=True)
    assert (tmp_path / "rounds.csv").read_text() == before
    run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=2), resume=True).run(progress=False)
    assert pd.read_csv(tmp_path / "rounds.csv")["round"].max() == 2


def test_random_skips_mc_inference_and_custom_functions_run(tiny_train, tiny_test, tmp_path, monkeypatch):
    from tests.plugins import custom_acquisition

    def no_inference(*args, **kwargs):
        raise AssertionError("random acquisition must not run MC dropout")

    monkeypatch.setattr(loop_module, "mc_probs", no_inference)
    monkeypatch.setattr(loop_module, "mc_scores", no_inference)
    run(tiny_train, tiny_test, tmp_path / "random", tiny_config(acquisitions=["random"], repeats=1)).run(progress=False)
    monkeypatch.undo()
    custom_acquisition.CALLS.clear()
    name = "tests.plugins.custom_acquisition:least_confident"
    run(tiny_train, tiny_test, tmp_path / "custom", tiny_config(acquisitions=[name], repeats=1)).run(progress=False)
    assert custom_acquisition.CALLS == [(10, 4, 10)] + [(120, 4, 10)] * 3  # the probe, then 3 rounds
    assert set(pd.read_csv(tmp_path / "custom" / "rounds.csv")["acquisition"]) == {name}


def test_initial_set_is_class_balanced_real_data(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path, tiny_config(initial=20, rounds=1, repeats=1)).run(progress=False)
    df = pd.read_csv(tmp_path / "rounds.csv")
    assert df.groupby("acquisition")["train_size"].apply(list).to_dict() == {"bald": [20, 25], "random": [20, 25]}
    initial = json.loads((tmp_path / "state" / "raw__bald__0.json").read_text())["rounds"][0]
    assert torch.bincount(tiny_train.labels_N[initial["index"]], minlength=10).tolist() == [2] * 10
    assert initial["label"] == tiny_train.labels_N[initial["index"]].tolist() and initial["score"] is None


@pytest.mark.parametrize("changes, message", [
    ({"rounds": 0}, "rounds must be >= 1"),
    ({"per_round": -1}, "per_round must be >= 1"),
    ({"pool_subset": 3}, "pool_subset"),
    ({"initial": -10}, "initial must be >= 0"),
    ({"acquisitions": ["bald", "bald"]}, "twice"),
    ({"rounds": 2.0}, "rounds must be a whole number"),
    ({"mc_samples": float("nan")}, "mc_samples must be a whole number"),
    ({"seed": float("inf")}, "seed must be a whole number"),
    ({"acquisitions": "bald"}, r"acquisitions must be a list of names, e.g. \['bald'\]"),
    ({"sources": "raw"}, "sources must be a list of names"),
    ({"acquisitions": [":"]}, r"acquisition ':' is not a registered name nor package.module:function"),
    ({"acquisitions": ["mod:"]}, "both parts non-empty"),
    ({"precision": "fp16"}, "precision must be one of"),
])
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**changes)


def test_an_initial_set_that_is_not_class_balanced_is_refused_before_any_work(tiny_train, tiny_test, tmp_path):
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        run(tiny_train, tiny_test, tmp_path, tiny_config(initial=15))
    assert not (tmp_path / "config.json").exists()


def test_more_acquisitions_than_the_pool_holds_is_refused_before_any_work(tiny_train, tiny_test, tmp_path):
    with pytest.raises(ValueError, match="need 405 candidates but source set 'raw' holds 400"):
        run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=81))
    assert not (tmp_path / "rounds.csv").exists()


def test_a_second_process_on_the_same_directory_is_refused(tiny_train, tiny_test, tmp_path):
    first = run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1))
    with pytest.raises(RunDirectoryError, match="another process"):
        run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1), resume=True)
    del first


def test_a_config_saved_before_newer_fields_existed_loads_with_the_old_seeding(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1)).run(progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["sources_provenance"], saved["seeding"], saved["test_fingerprint"]
    (tmp_path / "config.json").write_text(json.dumps({**saved, "gan_checkpoints": {}, "generated_per_class": 0}))
    config = ExperimentConfig.load(tmp_path / "config.json")
    assert (config.seeding, config.sources_provenance, config.test_fingerprint) == ("per_source", {}, {})


def test_legacy_gan_fields_load_as_the_sources_provenance(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=1)).run(progress=False)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["sources_provenance"]
    legacy = {"gan_dir": "results/zoo", "gan_checkpoints": {"pggan": "ab"}, "generated_per_class": 6000}
    (tmp_path / "config.json").write_text(json.dumps({**saved, **legacy}))
    assert ExperimentConfig.load(tmp_path / "config.json").sources_provenance == legacy


def test_class_counts_of_acquisitions_add_up(tiny_train, tiny_test, tmp_path):
    from analysis.acquired import acquired_class_counts
    run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=2, repeats=1)).run(progress=False)
    table = acquired_class_counts(tmp_path, [5, 10])
    assert sorted(table["train_size"].unique()) == [5, 10]
    with pytest.raises(ValueError, match="reached training-set size 99; the largest any arm reached is 10"):
        acquired_class_counts(tmp_path, [5, 10, 99])
    assert (table[[str(c) for c in range(10)]].sum(axis=1) == table["train_size"]).all()


def test_the_class_figure_draws_a_line_per_class_for_each_kind_of_arm(tiny_train, tiny_test, tmp_path):
    from analysis.acquired import cumulative_class_counts, plot_class_counts
    run(tiny_train, tiny_test, tmp_path, tiny_config(rounds=2, repeats=2)).run(progress=False)
    table = cumulative_class_counts(tmp_path)
    assert sorted(table["train_size"].unique()) == list(range(1, 11)) and len(table) == 2 * 2 * 10
    path = plot_class_counts(tmp_path, tmp_path / "classes.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SAVED_RUNS = Path(__file__).parents[2] / "data" / "format2_run"


@pytest.mark.parametrize("name, initial", [("empty", 0), ("initial", 20)])
def test_a_run_saved_by_an_earlier_version_resumes_to_the_rows_of_an_uninterrupted_run(
        tiny_train, tiny_test, tmp_path, capsys, one_thread, name, initial):
    """tests/data/format2_run: 2-round runs (state format 2, config without model/trainer) saved by the code before
    the model factory existed, with one torch thread; the default path must load them and compute the same numbers."""
    saved = shutil.copytree(SAVED_RUNS / name, tmp_path / "saved")
    config = tiny_config(repeats=1, initial=initial)
    run(tiny_train, tiny_test, saved, config, resume=True).run(progress=False)
    run(tiny_train, tiny_test, tmp_path / "whole", config).run(progress=False)
    assert json.loads((saved / "config.json").read_text())["model"] == "acquire.model:new_model"
    if "differs from the saved one" in capsys.readouterr().err:
        pytest.skip("this machine re-derives other weights than the one that saved the run (other CPU or torch)")
    pd.testing.assert_frame_equal(results(saved), results(tmp_path / "whole"))
    for state in (saved / "state").glob("*.json"):
        old, new = (json.loads(p.read_text()) for p in (state, tmp_path / "whole" / "state" / state.name))
        assert old["rounds"] == new["rounds"] and old["model_sha256"] == new["model_sha256"]


def test_per_image_masks_are_a_recorded_setting_that_changes_only_the_mc_arms(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path / "shared").run(progress=False)
    run(tiny_train, tiny_test, tmp_path / "per_image", tiny_config(mc_masks="per_image")).run(progress=False)
    assert json.loads((tmp_path / "per_image" / "config.json").read_text())["mc_masks"] == "per_image"
    shared, per_image = (results(tmp_path / name) for name in ("shared", "per_image"))
    random_rows = shared["acquisition"] == "random"
    pd.testing.assert_frame_equal(shared[random_rows], per_image[random_rows])  # random never samples dropout
    with pytest.raises(RunDirectoryError, match="mc_masks"):
        run(tiny_train, tiny_test, tmp_path / "per_image", tiny_config(rounds=4), resume=True)
