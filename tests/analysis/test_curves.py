"""Plotting of the active loop's learning curves, on a small synthetic CSV: numbers, styles, panels, texts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from scipy import stats

from analysis.curves import (build_figure, build_sweep_figure, dataset_name, distinct_colours, final_table,
                              format_mean_std, plot_curves, plot_sweep, protocol_text, read_curves, read_sweep,
                              summarise, summarise_sweep, table_at)
from runners import plot as plot_runner

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROUNDS = 25
ARMS = [("raw", "random"), ("raw+pggan", "bald")]


def _write_csv(path, drop=(), arms=ARMS, rounds=ROUNDS, repeats=2):
    rng = np.random.default_rng(0)
    rows = []
    for sources, acquisition in arms:
        for repeat in range(repeats):
            for rnd in range(1, rounds + 1):
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
    assert list(summary.columns) == ["run", "sources", "acquisition", "train_size", "mean", "std", "n_repeats", "ci95"]
    assert len(summary) == len(ARMS) * ROUNDS
    values = df.loc[(df.acquisition == "bald") & (df.train_size == 120), "balanced_accuracy"].to_numpy()
    row = summary[(summary.acquisition == "bald") & (summary.train_size == 120)].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(values))
    assert row["std"] == pytest.approx(np.std(values, ddof=0))
    assert row["n_repeats"] == 2
    low, high = stats.t.interval(0.95, 1, loc=np.mean(values), scale=stats.sem(values))
    assert row["ci95"] == pytest.approx((high - low) / 2)

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
    assert styles == {"random · raw (2 repeats)": "--", "bald · raw+pggan (2 repeats)": "-"}
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


def test_table_at_given_sizes_has_every_arm_and_the_range_of_generated_images(tmp_path):
    df = _write_csv(tmp_path / "curves.csv")
    df.loc[(df["sources"] == "raw+pggan") & (df["train_size"] == 100), "n_generated"] = [7, 12]
    table = table_at(read_curves(tmp_path / "curves.csv"), [50, 100])
    assert list(zip(table["train_size"], table["sources"])) == [(50, "raw"), (50, "raw+pggan"), (100, "raw"),
                                                                 (100, "raw+pggan")]
    arm = df[(df["sources"] == "raw") & (df["train_size"] == 100)]["balanced_accuracy"]
    assert table.loc[2, "mean"] == pytest.approx(arm.mean()) and table.loc[2, "std"] == pytest.approx(arm.std(ddof=0))
    df.to_csv(tmp_path / "curves.csv", index=False)
    table = table_at(read_curves(tmp_path / "curves.csv"), [100])
    assert table[["generated_min", "generated_max"]].values.tolist() == [[0, 0], [7, 12]]
    with pytest.raises(ValueError, match="no arm reached train_size 55; the rows have sizes 30 to 270"):
        table_at(df, [50, 55])


def test_runner_prints_and_writes_the_table_at_the_asked_sizes(csv_path, tmp_path, capsys):
    out, table = tmp_path / "fig.png", tmp_path / "means.csv"
    assert plot_runner.main([str(csv_path), "--out", str(out), "--at", "50,100", "--table", str(table)]) == 0
    written = pd.read_csv(table)
    assert list(written.columns) == ["run", "sources", "acquisition", "train_size", "mean", "std", "ci95",
                                     "n_repeats", "generated_min", "generated_max"]
    assert written["train_size"].tolist() == [50, 50, 100, 100]
    expected = summarise(read_curves(csv_path)).set_index(["sources", "train_size"])["mean"]
    for row in written.itertuples():
        assert row.mean == pytest.approx(100 * expected[(row.sources, row.train_size)])
    stdout = capsys.readouterr().out
    assert f"{written['mean'][0]:.2f} ± {written['std'][0]:.2f}" in stdout and f"and {table}" in stdout
    assert plot_runner.main([str(csv_path), "--out", str(tmp_path / "other.png"), "--at", "55"]) == 2
    assert "no arm reached train_size 55" in capsys.readouterr().err
    assert not (tmp_path / "other.png").exists()  # the figure is not drawn for a table that cannot be made


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
    with pytest.raises(ValueError, match="absent.csv: does not exist"):
        read_curves([tmp_path / "absent.csv"])
    with pytest.raises(ValueError, match=f"^{tmp_path}: is a directory; give the CSV file inside it"):
        read_curves(tmp_path)
    with pytest.raises(ValueError, match="^/dev/null: is not a regular file"):
        read_curves("/dev/null")
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
    lines = build_figure(df).axes[0].get_lines()
    labels = [line.get_label() for line in lines]
    assert any("[initial20]" in label for label in labels) and any("[empty_start]" in label for label in labels)
    assert lines[0].get_color() == lines[1].get_color() and lines[0].get_marker() != lines[1].get_marker()


def test_mean_std_text_shows_no_spread_for_a_single_repeat():
    assert format_mean_std(0.91234, 0.004, 3) == "91.23 ± 0.40"
    assert format_mean_std(0.91234, 0.0, 1) == "91.23"  # one run: a "± 0.00" would claim a spread never measured


FOUR_ARMS = [("raw", "random"), ("raw", "bald"), ("raw+pggan", "random"), ("raw+pggan", "bald")]


def _lines(fig, panel=0):
    return {line.get_label().split(" (")[0]: line for line in fig.axes[panel].get_lines()}


def test_colour_follows_the_source_set_and_style_the_acquisition(tmp_path):
    _write_csv(tmp_path / "four.csv", arms=FOUR_ARMS)
    lines = _lines(build_figure(read_curves(tmp_path / "four.csv")))
    assert to_hex(lines["random · raw"].get_color()) == to_hex(lines["bald · raw"].get_color())
    assert to_hex(lines["bald · raw"].get_color()) != to_hex(lines["bald · raw+pggan"].get_color())
    assert lines["random · raw"].get_linestyle() == lines["random · raw+pggan"].get_linestyle() == "--"
    assert lines["bald · raw"].get_linestyle() == lines["bald · raw+pggan"].get_linestyle() == "-"
    assert distinct_colours(["raw+mygan", "raw+othergan", "raw"]) == {"raw": "C0", "raw+mygan": "C1",
                                                                       "raw+othergan": "C2"}


def test_with_one_source_set_the_acquisition_functions_get_distinct_colours(tmp_path):
    _write_csv(tmp_path / "raw.csv", arms=[("raw", "bald"), ("raw", "random")])
    lines = _lines(build_figure(read_curves(tmp_path / "raw.csv")))
    assert to_hex(lines["bald · raw"].get_color()) != to_hex(lines["random · raw"].get_color())


@pytest.mark.parametrize("rounds", [5, 40])
def test_the_legend_lies_outside_every_axes(tmp_path, rounds):
    _write_csv(tmp_path / "four.csv", arms=FOUR_ARMS, rounds=rounds)
    fig = build_figure(read_curves(tmp_path / "four.csv"))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)


def test_zoom_panel_only_when_it_shows_fewer_rounds_than_the_left(csv_path):
    df = read_curves(csv_path)
    assert len(build_figure(df, last_rounds=ROUNDS).axes) == 1
    assert len(build_figure(df, last_rounds=ROUNDS - 1).axes) == 2


def test_band_meaning_and_repeats_are_written_on_the_figure(csv_path):
    df = read_curves(csv_path)
    title = build_figure(df, last_rounds=10).legends[0].get_title().get_text()
    assert "± 1 std over repeats (ddof = 0)" in title and "n = 2 repeats" in title
    fig = build_figure(df, last_rounds=ROUNDS, band="ci95")
    assert "95% t-interval of the mean" in fig.legends[0].get_title().get_text()
    last = 20 + 10 * ROUNDS
    arm = summarise(df).query("sources == 'raw' and train_size == @last").iloc[0]
    vertices = fig.axes[0].collections[0].get_paths()[0].vertices  # raw/random's band: the first arm drawn
    edges = vertices[vertices[:, 0] == last, 1]
    expected = np.clip(100 * (arm["mean"] + np.array([-1, 1]) * arm["ci95"]), 0, 100)
    assert (edges.min(), edges.max()) == pytest.approx(tuple(expected))
    uneven = df[~((df.repeat == 1) & (df.acquisition == "bald"))]
    legend = build_figure(uneven, last_rounds=ROUNDS).legends[0]
    assert "n = 1–2 repeats (per line in brackets)" in legend.get_title().get_text()
    single = build_figure(df[df.repeat == 0], last_rounds=ROUNDS).legends[0].get_title().get_text()
    assert single == "one repeat per point: no band"
    labels = build_figure(df[df.repeat == 0], last_rounds=ROUNDS).axes[0].get_legend_handles_labels()[1]
    assert all(label.endswith("(1 repeat)") for label in labels)
    with pytest.raises(ValueError, match="band must be one of"):
        build_figure(df, band="sem")


def test_title_carries_the_data_set_and_protocol(csv_path):
    config = {"initial": 20, "pool_subset": 0, "mc_samples": 100, "train": {"epochs": 50}, "rounds": 15,
              "per_round": 10, "repeats": 4}
    protocol = protocol_text(config)
    assert protocol == "initial 20, whole pool, T = 100, 50 epochs, 15 rounds of 10, 4 repeats"
    assert protocol_text({"pool_subset": 10000}) == "pool subset 10,000"
    assert dataset_name({"dataset": "FashionMNIST"}) == "FashionMNIST"
    assert dataset_name({"data_dir": "/data/kmnist/"}) == "kmnist" and dataset_name({}) is None
    fig = build_figure(read_curves(csv_path), title="raw vs raw+pggan", dataset="KMNIST", protocol=protocol)
    assert fig.get_suptitle() == f"KMNIST: raw vs raw+pggan\n{protocol}"
    assert build_figure(read_curves(csv_path)).get_suptitle() == ""


def test_runner_reads_dataset_and_protocol_from_config_json(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    _write_csv(run / "rounds.csv")
    seen = {}
    monkeypatch.setattr(plot_runner, "plot_curves", lambda df, out, **kw: seen.update(kw) or out)
    assert plot_runner.main([str(run / "rounds.csv"), "--out", str(tmp_path / "f.png")]) == 0
    assert seen["dataset"] is None and seen["protocol"] is None  # nothing recorded: no name invented
    (run / "config.json").write_text(json.dumps({"dataset": "EMNIST", "initial": 0, "mc_samples": 20}))
    assert plot_runner.main([str(run / "rounds.csv"), "--out", str(tmp_path / "f.png"), "--band", "ci95"]) == 0
    assert (seen["dataset"], seen["protocol"], seen["band"]) == ("EMNIST", "initial 0, T = 20", "ci95")
    assert plot_runner.main([str(run / "rounds.csv"), "--out", str(tmp_path / "f.png"), "--dataset", "MNIST",
                             "--max-train-size", "100"]) == 0
    assert seen["dataset"] == "MNIST" and seen["protocol"] == "initial 0, T = 20\nshown up to train_size 100"


def test_runner_reports_a_damaged_config_json(csv_path, tmp_path, capsys):
    (csv_path.parent / "config.json").write_text("{not json")
    assert plot_runner.main([str(csv_path), "--out", str(tmp_path / "f.png")]) == 2
    assert "config.json: not readable JSON" in capsys.readouterr().err


def test_sweep_legend_says_what_the_band_is(tmp_path):
    df = pd.DataFrame({"n": [10, 10, 20, 20], "method": "a", "repeat": [0, 1, 0, 1], "accuracy": [.5, .6, .7, .8]})
    fig = build_sweep_figure(df, x="n", line="method", band="ci95")
    assert "95% t-interval" in fig.legends[0].get_title().get_text()
    assert plot_sweep(df, tmp_path / "sweep.png", x="n", line="method").read_bytes().startswith(PNG_MAGIC)


def test_a_csv_given_twice_or_two_runs_of_one_folder_name_or_a_duplicated_row_are_refused(tmp_path, csv_path):
    with pytest.raises(ValueError, match="the same CSV was given twice"):
        read_curves([csv_path, csv_path])
    (tmp_path / "a" / csv_path.parent.name).mkdir(parents=True)
    other = tmp_path / "a" / csv_path.parent.name / "other.csv"
    other.write_text(csv_path.read_text())
    with pytest.raises(ValueError, match="share the folder name"):
        read_curves([csv_path, other])
    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text("".join(lines + lines[1:2]))
    with pytest.raises(ValueError, match="2 rows for .* remove the duplicate rows"):
        read_curves(csv_path)
    assert plot_runner.main([str(csv_path), "--out", str(tmp_path / "c.png")]) == 2
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("value", ["inf", "-inf", "abc"])
def test_an_infinite_or_non_numeric_metric_is_refused_naming_the_file(csv_path, value):
    df = pd.read_csv(csv_path)
    df["balanced_accuracy"] = df["balanced_accuracy"].astype(object)
    df.loc[3, "balanced_accuracy"] = value
    df.to_csv(csv_path, index=False)
    with pytest.raises(ValueError, match=f"{csv_path}: column balanced_accuracy holds '{value}' \\(row 5, "
                                         "raw/random repeat 0\\)"):
        read_curves(csv_path)


@pytest.mark.parametrize("column, value, problem", [
    ("balanced_accuracy", "", "is empty or NaN"),
    ("balanced_accuracy", "nan", "is empty or NaN"),
    ("balanced_accuracy", "1.7", "holds '1.7' .*; each balanced_accuracy must be a fraction in \\[0, 1\\]"),
    ("accuracy", "-0.1", "holds '-0.1' .*; each accuracy must be a fraction in \\[0, 1\\]"),
    ("train_size", "-5", "holds '-5' .*; each train_size must be an integer >= 0"),
    ("train_size", "30.5", "holds '30.5' .*; each train_size must be an integer >= 0"),
    ("repeat", "", "is empty or NaN"),
])
def test_a_missing_or_impossible_value_is_refused_naming_file_row_arm_and_value(csv_path, tmp_path, capsys, column,
                                                                               value, problem):
    df = pd.read_csv(csv_path).astype({column: object})
    df.loc[3, column] = value
    df.to_csv(csv_path, index=False)
    metric = "accuracy" if column == "accuracy" else "balanced_accuracy"
    with pytest.raises(ValueError, match=f"^{csv_path}: column {column} {problem}"):
        read_curves(csv_path, metric)
    with pytest.raises(ValueError, match="\\(row 5, raw/random" + ("\\)" if column == "repeat" else " repeat 0\\)")):
        read_curves(csv_path, metric)
    assert plot_runner.main([str(csv_path), "--metric", metric, "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert f"{csv_path}: column {column}" in err and len(err.strip().splitlines()) == 1


def test_a_column_the_tool_does_not_read_may_be_empty(csv_path):
    df = pd.read_csv(csv_path)
    df["accuracy"] = np.nan  # e.g. balanced_accuracy_real_only in a run made without --real-only
    df.to_csv(csv_path, index=False)
    assert len(read_curves(csv_path, "balanced_accuracy")) == len(df)
    with pytest.raises(ValueError, match="column accuracy is empty or NaN"):
        read_curves(csv_path, "balanced_accuracy", also=["accuracy"])


@pytest.mark.parametrize("value, problem", [("nan", "is empty or NaN"), ("inf", "holds 'inf'"),
                                            ("abc", "holds 'abc'"), ("1.5", "holds '1.5'")])
def test_a_sweep_table_with_a_bad_value_is_refused_naming_the_file(tmp_path, value, problem):
    path = tmp_path / "results.csv"
    df = pd.DataFrame({"n": [10, 10, 20], "method": "a", "repeat": [0, 1, 0], "accuracy": [".5", ".6", value]})
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"^{path}: column accuracy {problem} \\(row 4\\)"):
        read_sweep(path, ["n", "repeat", "accuracy"])
    with pytest.raises(ValueError, match=f"^the sweep table: column accuracy {problem}"):
        summarise_sweep(pd.read_csv(path), x="n", line="method")
    with pytest.raises(ValueError, match=f"^{path}: missing column\\(s\\) balanced_accuracy"):
        read_sweep(path, ["accuracy", "balanced_accuracy"])


def test_plot_writes_beside_the_csv_by_default_and_keeps_the_runs_own_figure(csv_path, capsys):
    figure = csv_path.parent / "curves.png"
    figure.write_bytes(b"the run's figure")
    assert plot_runner.main([str(csv_path)]) == 0
    assert (csv_path.parent / "curves_plot.png").stat().st_size > 0
    assert plot_runner.main([str(csv_path), "--out", str(figure)]) == 2
    assert "is the figure the run wrote" in capsys.readouterr().err and figure.read_bytes() == b"the run's figure"
    assert plot_runner.main([str(csv_path), "--out", str(figure), "--force"]) == 0
    assert figure.read_bytes() != b"the run's figure"


def test_a_sweep_row_given_twice_is_refused_not_counted_as_a_repeat():
    df = pd.DataFrame({"n": [10, 10], "method": "a", "repeat": [0, 1], "accuracy": [.5, .6]})
    assert summarise_sweep(df, x="n", line="method")["n_repeats"].tolist() == [2]
    with pytest.raises(ValueError, match="2 identical rows"):
        summarise_sweep(pd.concat([df, df.iloc[[1]]]), x="n", line="method")
