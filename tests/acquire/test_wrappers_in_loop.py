"""quota:, gate: and the diversity functions run through the loop on real MNIST: what each records per round."""

import json

import pandas as pd
import pytest
import torch

from acquire.data import ImageSet
from acquire.loop import ActiveLearningRun, ExperimentConfig
from acquire.pool import CandidatePool
from acquire.training import TrainConfig


def two_source_pool(tiny_train) -> CandidatePool:
    """200 real candidates and 200 others standing in for a generator's (labels known, source not 'raw')."""
    real = tiny_train.subset(torch.arange(200))
    other = tiny_train.subset(torch.arange(200, 400))
    return CandidatePool({"raw": real, "gen": ImageSet(other.images_NCHW, other.labels_N)})


def run(tiny_train, tiny_test, out, acquisitions, **changes):
    config = ExperimentConfig(sources=["raw+gen"], acquisitions=acquisitions, rounds=2, per_round=10, repeats=1, mc_samples=4,
                              train=TrainConfig(epochs=2, batch_size=16), gate_judge_epochs=2, **changes)
    loop = ActiveLearningRun(config, {"raw+gen": two_source_pool(tiny_train)}, tiny_test, out)
    loop.run(progress=False)
    loop.close()
    return loop


def records(out) -> dict[str, list[dict]]:
    """acquisition name -> its per-round acquisition records, from the run's state files."""
    found = {}
    for path in (out / "state").glob("*.json"):
        saved = json.loads(path.read_text())
        found[saved["arm"]["acquisition"]] = saved["rounds"]
    return found


def test_quota_takes_one_image_per_class_each_round_and_gate_logs_its_share(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path, ["bald", "quota:bald", "gate:quota:bald"])
    rec = records(tmp_path)
    for name in ("quota:bald", "gate:quota:bald"):
        for round_record in rec[name]:
            assert sorted(round_record["label"]) == list(range(10))  # uniform target, k = K: one per class
    for round_record in rec["gate:quota:bald"]:
        share = round_record["gated_share"]
        assert len(share) == 10 and all(s is None or 0 <= s <= 1 for s in share)
    assert "gated_share" not in rec["bald"][0]
    df = pd.read_csv(tmp_path / "rounds.csv")
    assert sorted(df["acquisition"].unique()) == ["bald", "gate:quota:bald", "quota:bald"]
    assert (df.groupby("acquisition")["train_size"].max() == 20).all()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["gate_threshold"] == 0.5 and config["quota_target"] == "uniform"


def test_badge_and_coreset_choose_distinct_candidates_and_resume_to_the_same_rows(tiny_train, tiny_test, tmp_path):
    run(tiny_train, tiny_test, tmp_path / "a", ["badge", "coreset"])
    for round_records in records(tmp_path / "a").values():
        chosen = [i for r in round_records for i in r["index"]]
        assert len(chosen) == len(set(chosen)) == 20
    first = pd.read_csv(tmp_path / "a" / "rounds.csv")
    # the same run, stopped after round 1 and resumed, gives the same rows
    config = ExperimentConfig(sources=["raw+gen"], acquisitions=["badge", "coreset"], rounds=1, per_round=10, repeats=1, mc_samples=4,
                              train=TrainConfig(epochs=2, batch_size=16), gate_judge_epochs=2)
    with ActiveLearningRun(config, {"raw+gen": two_source_pool(tiny_train)}, tiny_test, tmp_path / "b") as loop:
        loop.run(progress=False)
    resumed_config = ExperimentConfig.load(tmp_path / "b" / "config.json")
    import dataclasses
    with ActiveLearningRun(dataclasses.replace(resumed_config, rounds=2), {"raw+gen": two_source_pool(tiny_train)},
                           tiny_test, tmp_path / "b", resume=True) as loop:
        loop.run(progress=False)
    second = pd.read_csv(tmp_path / "b" / "rounds.csv")
    columns = ["acquisition", "round", "train_size", "n_generated", "balanced_accuracy"]
    pd.testing.assert_frame_equal(first[columns].sort_values(columns[:2]).reset_index(drop=True),
                                  second[columns].sort_values(columns[:2]).reset_index(drop=True))


@pytest.mark.parametrize("changes, message", [
    (dict(gate_threshold=float("nan")), "gate_threshold"),
    (dict(gate_threshold=1.5), "gate_threshold"),
    (dict(quota_target="zipf"), "quota_target"),
    (dict(acquisitions=["quota:"]), "wraps an acquisition function"),
])
def test_bad_wrapper_settings_are_refused_before_any_work(tiny_train, tiny_test, tmp_path, changes, message):
    from acquire.errors import UserError
    values = dict(sources=["raw+gen"], acquisitions=["quota:bald"], rounds=1, per_round=10, repeats=1)
    values.update(changes)
    with pytest.raises(UserError, match=message):
        config = ExperimentConfig(**values)
        ActiveLearningRun(config, {"raw+gen": two_source_pool(tiny_train)}, tiny_test, tmp_path / "run")
    assert not (tmp_path / "run" / "rounds.csv").exists()


def test_the_real_only_counterfactual_shares_draws_and_resumes(tiny_train, tiny_test, tmp_path, capsys):
    import dataclasses
    from runners import compare
    values = dict(acquisitions=["random", "bald"], rounds=2, per_round=10, repeats=2, mc_samples=4,
                  train=TrainConfig(epochs=2, batch_size=16), real_only=True)
    # raw only: the counterfactual trains on the very same images with the same draws, so it adds exactly nothing
    raw = ExperimentConfig(**values)
    with ActiveLearningRun(raw, {"raw": CandidatePool({"raw": tiny_train})}, tiny_test, tmp_path / "raw") as loop:
        loop.run(progress=False)
    df = pd.read_csv(tmp_path / "raw" / "rounds.csv")
    assert (df["generated_gain"] == 0).all() and (df["balanced_accuracy_real_only"] == df["balanced_accuracy"]).all()
    # with generated candidates it differs, and a stopped run resumes to the same rows, new columns included
    mixed = ExperimentConfig(sources=["raw+gen"], **values)
    with ActiveLearningRun(mixed, {"raw+gen": two_source_pool(tiny_train)}, tiny_test, tmp_path / "a") as loop:
        loop.run(progress=False)
    short = dataclasses.replace(mixed, rounds=1)
    with ActiveLearningRun(short, {"raw+gen": two_source_pool(tiny_train)}, tiny_test, tmp_path / "b") as loop:
        loop.run(progress=False)
    with ActiveLearningRun(mixed, {"raw+gen": two_source_pool(tiny_train)}, tiny_test, tmp_path / "b",
                           resume=True) as loop:
        loop.run(progress=False)
    a, b = (pd.read_csv(tmp_path / d / "rounds.csv") for d in ("a", "b"))
    columns = ["acquisition", "repeat", "round", "balanced_accuracy", "balanced_accuracy_real_only", "generated_gain"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    assert (a["generated_gain"] != 0).any()
    assert a["generated_gain"].tolist() == pytest.approx((a["balanced_accuracy"] - a["balanced_accuracy_real_only"])
                                                         .tolist())
    # runners.compare reports each arm's gain with its interval; a run without the counterfactual is refused
    assert compare.main([str(tmp_path / "a" / "rounds.csv"), "--at", "20", "--generated-gain"]) == 0
    out = capsys.readouterr().out
    assert "raw+gen/random (real only)" in out and "raw+gen/bald (real only)" in out
    plain = ExperimentConfig(sources=["raw+gen"], **{**values, "real_only": False, "rounds": 1})
    with ActiveLearningRun(plain, {"raw+gen": two_source_pool(tiny_train)}, tiny_test, tmp_path / "c") as loop:
        loop.run(progress=False)
    assert compare.main([str(tmp_path / "c" / "rounds.csv"), "--at", "10", "--generated-gain"]) == 2
    assert "needs a run made with --real-only" in capsys.readouterr().err
