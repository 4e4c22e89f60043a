"""Plotting of the active loop's learning curves, on a small synthetic CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from acquire.plotting import build_figure, final_table, format_mean_std, plot_curves, read_curves, summarise
from runners import plot as plot_runner

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROUNDS = 25
ARMS = [("raw", "random"), ("raw+pggan", "bald")]


def _write_csv(path, drop=()):
    rng = np.random.default_rng(0)
    rows = []
    for sources, acquisition in ARMS:
        for repeat in range(2):
            for rnd in range(1, ROUNDS + 1):
                size = 20 + 10 * rnd
                rows.append({
                    "sources": sources, "acquisition": acquisition, "repeat": repeat, "seed": 100 + repeat,
                    "round": rnd, "train_size": size, "n_real": size, "n_generated": 0,
                    "acquired_by_source": "raw=10;pggan=0",
                    "balanced_accuracy": min(0.99, 0.5 + 0.015 * rnd + 0.02 * rng.random()),
                    "accuracy": min(0.99, 0.5 + 0.015 * rnd + 0.02 * rng.random()),
                    "train_seconds": 1.0, "score_seconds": 0.5, "eval_seconds": 0.2,
                })
    df = pd.DataFrame(rows).drop(columns=list(drop))
    df.to_csv(path, index=False)
    return df


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "curves.csv"
    _write_csv(path)
    return path


def test_summarise_matches_numpy(csv_path):
    df = read_curves([csv_path])
    summary = summarise(df)
    assert list(summary.columns) == ["run", "sources", "acquisition", "train_size", "mean", "std", "n_repeats"]
    assert len(summary) == len(ARMS) * ROUNDS
    values = df.loc[(df.acquisition == "bald") & (df.train_size == 120), "balanced_accuracy"].to_numpy()
    row = summary[(summary.acquisition == "bald") & (summary.train_size == 120)].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(values))
    assert row["std"] == pytest.approx(np.std(values, ddof=0))
    assert row["n_repeats"] == 2

    final = final_table(df)
    assert len(final) == len(ARMS)
    assert (final["train_size"] == 20 + 10 * ROUNDS).all()


def test_plot_curves_writes_png_with_two_panels(csv_path, tmp_path):
    df = read_curves(csv_path)
    fig = build_figure(df, last_rounds=10)
    assert len(fig.axes) == 2
    left, right = fig.axes
    assert len(left.get_lines()) == len(ARMS) and len(right.get_lines()) == len(ARMS)
    assert all(len(line.get_xdata()) == ROUNDS for line in left.get_lines())
    assert all(len(line.get_xdata()) == 10 for line in right.get_lines())
    styles = {line.get_label(): line.get_linestyle() for line in left.get_lines()}
    assert styles == {"random · raw (2 runs)": "--", "bald · raw+pggan (2 runs)": "-"}
    assert [line.get_color() for line in left.get_lines()] == [line.get_color() for line in right.get_lines()]
    assert right.get_ylim()[0] > left.get_ylim()[0]

    out = plot_curves(df, tmp_path / "figs" / "curves.png", last_rounds=10, title="synthetic")
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]


def test_runner_main_writes_file(csv_path, tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert plot_runner.main([str(csv_path), "--out", str(out), "--metric", "accuracy", "--last-rounds", "5"]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    stdout = capsys.readouterr().out
    assert "±" in stdout and f"wrote {out}" in stdout


def test_runner_can_cut_runs_to_a_common_size(csv_path, tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert plot_runner.main([str(csv_path), "--out", str(out), "--max-train-size", "100"]) == 0
    final_sizes = [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:3]]
    assert final_sizes == ["100", "100"]
    assert plot_runner.main([str(csv_path), "--out", str(out), "--max-train-size", "5"]) == 2
    assert "no rows with train_size <= 5" in capsys.readouterr().err


def test_runner_reports_missing_column(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    _write_csv(bad, drop=["train_size"])
    out = tmp_path / "fig.png"
    assert plot_runner.main([str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train_size" in err and "bad.csv" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_read_curves_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_curves([tmp_path / "absent.csv"])
    empty = tmp_path / "empty.csv"
    _write_csv(empty).iloc[:0].to_csv(empty, index=False)
    with pytest.raises(ValueError, match="no rows"):
        read_curves(empty)


def test_separate_runs_with_the_same_arms_are_not_merged(tmp_path):
    """Two runs of (raw, bald) under different protocols stay two lines, labelled by their directory."""
    for name, shift in (("empty_start", 0.0), ("initial20", 0.1)):
        rows = [{"sources": "raw", "acquisition": "bald", "repeat": 0, "seed": 0, "round": r, "train_size": 10 * r,
                 "balanced_accuracy": 0.5 + shift} for r in range(1, 4)]
        (tmp_path / name).mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / name / "rounds.csv", index=False)
    df = read_curves([tmp_path / "empty_start" / "rounds.csv", tmp_path / "initial20" / "rounds.csv"])
    summary = summarise(df)
    assert sorted(summary.groupby("run")["mean"].first().round(3).tolist()) == [0.5, 0.6]
    labels = [line.get_label() for line in build_figure(df).axes[0].get_lines()]
    assert any("[initial20]" in label for label in labels) and any("[empty_start]" in label for label in labels)


def test_mean_std_text_shows_no_spread_for_a_single_repeat():
    assert format_mean_std(0.91234, 0.004, 3) == "91.23 ± 0.40"
    assert format_mean_std(0.91234, 0.0, 1) == "91.23"  # one run: a "± 0.00" would claim a spread never measured
