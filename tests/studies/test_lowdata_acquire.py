"""The low-data acquisition study on a real MNIST slice: L is always trained on and is the only real data used, the
pool holds L and the generator's samples, a rerun continues instead of redoing, and the analysis reads it."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from acquire.errors import UserError
from analysis.stats import holm_adjust
from gans.subset import read_subset_record, unseen_indices
from studies.lowdata_acquire.comparisons import comparison_table, compare, repeat_endpoints, required_repeats
from studies.lowdata_acquire.protocol import LowDataAcquireConfig, arms
from studies.lowdata_acquire.study import run_cell

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = LowDataAcquireConfig(per_class=3, repeats=1, gan_images=600, generated_per_class=8, rounds=2, epochs=2,
                            mc_samples=4, pool_subset=40, acquisitions=("random", "bald", "quota:bald",
                                                                        "gate:quota:bald"),
                            augmented_acquisitions=("random", "gate:quota:bald"), quality_samples=20)


@pytest.fixture(scope="module")
def cell(tmp_path_factory, tiny_train, tiny_test):
    out = tmp_path_factory.mktemp("cell")
    run_cell(TINY, tiny_train, tiny_test, out, "mnist", torch.device("cpu"), progress=False)
    return out


def test_l_is_in_every_training_set_and_every_round_adds_k_generated_images(cell, tiny_train):
    for run in ("plain", "augmented"):
        df = pd.read_csv(cell / "r0" / run / "rounds.csv")
        assert (df["n_real"] == 30).all()  # L: 3 per class, always there
        assert (df["n_generated"] == df["round"] * TINY.k(10)).all()
        config = json.loads((cell / "r0" / run / "config.json").read_text())
        [fingerprint] = config["pool_fingerprint"].values()
        assert fingerprint["raw"]["images"] == 30 and fingerprint["small_dcgan"]["images"] == 80  # no other reals
    assert json.loads((cell / "r0" / "augmented" / "config.json").read_text())["trainer"] == \
        "studies.lowdata_acquire.augmented_training:train_augmented"
    # the generator was trained on L alone: its sidecar records the subset, and the subset re-draws from the split
    sidecar = json.loads((cell / "r0" / "gan" / "small_dcgan.json").read_text())
    record = read_subset_record(cell / "r0" / "subset.json")
    assert sidecar["subset"] == record and sidecar["training_images"] == 30 and sidecar["weights_dtype"] == "float16"
    assert len(unseen_indices(tiny_train, record)) == len(tiny_train) - 30
    quality = json.loads((cell / "r0" / "generator.json").read_text())
    assert {"label_agreement", "frechet_distance", "cas_accuracy", "near_copy_share"} <= set(quality)


def test_a_rerun_continues_and_other_settings_are_refused(cell, tiny_train, tiny_test):
    before = pd.read_csv(cell / "r0" / "plain" / "rounds.csv")
    run_cell(TINY, tiny_train, tiny_test, cell, "mnist", torch.device("cpu"), progress=False)
    pd.testing.assert_frame_equal(before, pd.read_csv(cell / "r0" / "plain" / "rounds.csv"))
    with pytest.raises(UserError, match="differs in epochs"):
        run_cell(LowDataAcquireConfig(**{**TINY.to_dict(), "epochs": 3}), tiny_train, tiny_test, cell, "mnist",
                 torch.device("cpu"), progress=False)


def test_the_endpoints_and_comparisons_read_the_cell(cell):
    endpoints = repeat_endpoints(cell)
    assert sorted(endpoints["arm"]) == sorted(arms(TINY))
    plain = pd.read_csv(cell / "r0" / "plain" / "rounds.csv")
    random_rows = plain[(plain["acquisition"] == "random") & (plain["round"] >= 1)]
    row = endpoints[endpoints["arm"] == "random"].iloc[0]
    assert row["last"] == random_rows[random_rows["round"] == 2]["balanced_accuracy"].iloc[0]
    assert row["mean"] == pytest.approx(random_rows["balanced_accuracy"].mean())
    table = comparison_table({"mnist_n3": cell})
    assert len(table) == 2 * 9 and (table["n"] == 1).all()  # one repeat: no interval yet


def test_paired_comparison_matches_scipy_and_holm_matches_its_definition():
    from scipy import stats
    endpoints = pd.DataFrame({"arm": ["a"] * 4 + ["b"] * 4, "repeat": [0, 1, 2, 3] * 2,
                              "last": [0.90, 0.80, 0.85, 0.70, 0.88, 0.79, 0.80, 0.71], "mean": [0.0] * 8})
    result = compare(endpoints, "a", "b", "last")
    differences = 100 * np.array([0.02, 0.01, 0.05, -0.01])
    assert result["mean"] == pytest.approx(differences.mean())
    assert result["p"] == pytest.approx(stats.ttest_rel(differences, 0 * differences).pvalue)
    half = stats.t.ppf(0.975, 3) * differences.std(ddof=1) / 2
    assert (result["low"], result["high"]) == pytest.approx((differences.mean() - half, differences.mean() + half))
    p = np.array([0.04, 0.001, 0.03, 0.2, 0.01])
    m, order = len(p), np.argsort(p)
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        expected[i] = running
    assert holm_adjust(p) == pytest.approx(expected)
    with pytest.raises(UserError):
        holm_adjust([0.1, float("nan")])


def test_required_repeats_grows_with_the_paired_std():
    assert required_repeats(1.0) == 10 and required_repeats(0.5) < 10 < required_repeats(2.0)


def test_what_each_arm_acquired_is_read_from_the_very_images_and_a_tampered_state_is_refused(cell, tiny_train,
                                                                                            tmp_path):
    import shutil
    from studies.lowdata_acquire.acquired import near_copy_shares
    shares = near_copy_shares(cell, tiny_train)
    assert sorted(shares["arm"]) == sorted(a for a in arms(TINY) if a not in ("none", "classical"))
    assert (shares["acquired"] == TINY.rounds * TINY.k(10)).all()
    assert shares["near_copy_share"].between(0, 1).all()
    assert shares.set_index("arm")["gated_share"].notna().to_dict() == {
        "random": False, "bald": False, "quota:bald": False, "gate:quota:bald": True,
        "classical+random": False, "classical+gate:quota:bald": True}
    copy = tmp_path / "cell"
    shutil.copytree(cell, copy)
    [path] = (copy / "r0" / "plain" / "state").glob("*__bald__0.json")
    saved = json.loads(path.read_text())
    saved["rounds"][1]["index"][0] = saved["rounds"][1]["index"][0] + 1 if saved["rounds"][1]["index"][0] < 100 else 50
    path.write_text(json.dumps(saved))
    with pytest.raises(UserError, match="differ from the rebuilt pool"):
        near_copy_shares(copy, tiny_train)


def test_the_report_writes_its_tables_and_a_figure_per_data_set(cell, tmp_path, monkeypatch, tiny_train):
    from runners import lowdata_report
    monkeypatch.setattr(lowdata_report, "load_split", lambda split, root: tiny_train)
    assert lowdata_report.main([str(cell), "--out", str(tmp_path / "report")]) == 0
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"comparisons.csv", "near_copy.csv", "acquired.csv", "generators.csv", "endpoints.csv",
            "differences_mnist.png"} <= names
    assert lowdata_report.main([str(tmp_path), "--out", str(tmp_path / "r2")]) == 2  # not a cell


def test_class_balance_draws_the_images_each_arm_acquired(cell, tmp_path, monkeypatch, tiny_train):
    from runners import class_balance
    monkeypatch.setattr(class_balance, "load_split", lambda split, data_dir=None: tiny_train)
    assert class_balance.main([str(cell / "r0" / "plain"), "--images", str(tmp_path / "acquired.png"),
                               "--rounds", "2"]) == 0
    assert (tmp_path / "acquired.png").stat().st_size > 10_000
    assert class_balance.main([str(cell / "r0" / "plain"), "--images", str(tmp_path / "x.png"), "--repeat", "3"]) == 2
