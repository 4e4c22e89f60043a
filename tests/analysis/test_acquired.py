"""analysis.acquired and `python -m runners.class_balance`: what each arm acquired, by class, from its state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.acquired import acquired_class_counts
from runners import class_balance


def _state(run_dir, labels, repeat=0, sources=None):
    (run_dir / "state").mkdir(parents=True, exist_ok=True)
    record = {"label": labels} if sources is None else {"label": labels, "source": sources}
    state = {"arm": {"sources": "raw", "acquisition": "bald", "repeat": repeat}, "rounds": [record]}
    (run_dir / "state" / f"raw_bald_{repeat}.json").write_text(json.dumps(state))


def test_counts_per_class_at_each_size_reached(tmp_path):
    _state(tmp_path, [0, 1, 1, 2])
    table = acquired_class_counts(tmp_path, [2, 4])
    assert table[["train_size", "0", "1", "2"]].values.tolist() == [[2, 1, 1, 0], [4, 1, 2, 1]]


@pytest.mark.parametrize("sizes", ["--sizes=-10", "--sizes=0,20", "--sizes=-10,30"])
def test_sizes_below_one_are_refused(tmp_path, capsys, sizes):
    _state(tmp_path, [0, 1])
    assert class_balance.main([str(tmp_path), sizes]) == 2
    assert "training-set sizes must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("label", ["3", 1.5, -1, None])
def test_a_label_that_is_not_a_class_index_is_refused_naming_the_file(tmp_path, capsys, label):
    _state(tmp_path, [0, label])
    assert class_balance.main([str(tmp_path), "--sizes", "1"]) == 2
    err = capsys.readouterr().err
    assert "raw_bald_0.json: label" in err and "is not a class index" in err and len(err.strip().splitlines()) == 1


def test_a_directory_without_state_names_what_to_give(tmp_path, capsys):
    assert class_balance.main([str(tmp_path)]) == 2
    assert "give the output directory of an active-learning run" in capsys.readouterr().err


def test_counts_by_source_split_each_arm_s_acquisitions(tmp_path):
    _state(tmp_path, [0, 1, 1, 2], sources=["raw", "pggan", "raw", "pggan"])
    table = acquired_class_counts(tmp_path, [4], by_source=True)
    assert table[["source", "0", "1", "2"]].values.tolist() == [["pggan", 0, 1, 1], ["raw", 1, 1, 0]]


def test_default_sizes_come_from_the_run_so_a_short_run_gets_a_table(tmp_path, capsys):
    """A 40-image run (shorter than any fixed default list) still prints its counts at 10, 20, 30 and 40."""
    _state(tmp_path, [i % 4 for i in range(40)])
    _state(tmp_path, [i % 4 for i in range(50)], repeat=1)
    assert class_balance.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 4 * 2 and all(f" {size} " in out for size in (10, 20, 30, 40))


def test_the_class_figure_shares_one_y_scale_and_names_the_protocol(tmp_path):
    from analysis.acquired import class_counts_figure
    _state(tmp_path, [0] * 30 + [1] * 2)
    state = {"arm": {"sources": "raw", "acquisition": "random", "repeat": 0}, "rounds": [{"label": [0, 1] * 4}]}
    (tmp_path / "state" / "raw_random_0.json").write_text(json.dumps(state))
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "mnist", "initial": 0, "pool_subset": 10000,
                                                      "mc_samples": 20, "rounds": 20, "per_round": 10,
                                                      "repeats": 4, "train": {"epochs": 100}}))
    figure = class_counts_figure(tmp_path)
    shown = [ax for ax in figure.axes if ax.get_visible()]
    assert len(shown) == 2 and len({ax.get_ylim() for ax in shown}) == 1
    assert shown[1].get_ylim()[1] >= 30  # the panel whose counts stay at 4 gets the other's scale
    title = figure._suptitle.get_text()
    assert title.startswith("mnist: ") and "pool subset 10,000, T = 20, 100 epochs, 20 rounds of 10, 4 repeats" in title


def test_sizes_no_arm_reached_are_refused_naming_the_largest_reached(tmp_path, capsys):
    _state(tmp_path, [0, 1, 1, 2])
    _state(tmp_path, [0, 1, 1], repeat=1)
    assert class_balance.main([str(tmp_path), "--sizes", "2,1000"]) == 2
    err = capsys.readouterr().err
    assert f"no arm of {tmp_path} reached training-set size 1000; the largest any arm reached is 4" in err
    assert len(err.strip().splitlines()) == 1
    assert acquired_class_counts(tmp_path, [4])["repeat"].tolist() == [0]  # a size some arm reached: those arms


def test_a_label_beyond_the_run_s_classes_is_refused_naming_the_state(tmp_path, capsys):
    """K = 4 from the run's class-balanced initial images (config.json's "initial" 4), not from the label 99."""
    (tmp_path / "config.json").write_text(json.dumps({"initial": 4}))
    _state(tmp_path, [3, 0, 2, 1, 1, 0])
    assert acquired_class_counts(tmp_path, [6]).columns.tolist()[-4:] == ["0", "1", "2", "3"]
    _state(tmp_path, [3, 0, 2, 1, 99], repeat=1)
    assert class_balance.main([str(tmp_path), "--sizes", "5"]) == 2
    err = capsys.readouterr().err
    assert "raw_bald_1.json: label 99 is outside the run's 4 classes 0..3; the state is damaged" in err
    assert len(err.strip().splitlines()) == 1


def test_the_data_set_s_classes_are_the_columns_when_data_dir_is_given(tmp_path, capsys):
    """A class never acquired stays a column (starvation shows); a label beyond the data's classes is refused."""
    data = tmp_path / "five.npz"
    np.savez(data, x_train=np.zeros((10, 4, 4), np.uint8), y_train=np.arange(10) % 5,
             x_test=np.zeros((5, 4, 4), np.uint8), y_test=np.arange(5))
    run = tmp_path / "run"
    _state(run, [0, 1, 1])
    assert class_balance.main([str(run), "--sizes", "3", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[-5:] == ["0", "1", "2", "3", "4"]
    _state(run, [0, 7], repeat=1)
    assert class_balance.main([str(run), "--sizes", "2", "--data-dir", str(data)]) == 2
    assert "raw_bald_1.json: label 7 is outside the run's 5 classes 0..4" in capsys.readouterr().err
