"""analysis.differences and `python -m runners.differences` on a tiny frame: per-size and window differences
against ttest_rel, the arms' correlation, one panel per pair on one y-scale, GPU rows marked, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from acquire.errors import UserError
from analysis.differences import (arm_correlation, build_difference_figure, comparison_table, device_spans,
                                  difference_curves, window_difference)
from runners import differences as runner

RAW_RANDOM, RAW_BALD, GAN_BALD = ("raw", "random"), ("raw", "bald"), ("raw+g", "bald")
ROUNDS, REPEATS = 6, 3


def _frame() -> pd.DataFrame:
    """raw arms in run 'cpu_run', the GAN arm in run 'gpu_run'; accuracy rises by round, with a repeat effect."""
    rng = np.random.default_rng(1)
    rows = []
    for (sources, acquisition), run, shift in ((RAW_RANDOM, "cpu_run", 0.0), (RAW_BALD, "cpu_run", 0.02),
                                               (GAN_BALD, "gpu_run", 0.01)):
        for repeat in range(REPEATS):
            for rnd in range(1, ROUNDS + 1):
                rows.append({"sources": sources, "acquisition": acquisition, "repeat": repeat, "seed": 0,
                             "round": rnd, "train_size": 10 * rnd, "run": run,
                             "balanced_accuracy": 0.5 + 0.05 * rnd + shift + 0.01 * repeat + 0.01 * rng.random()})
    return pd.DataFrame(rows)


def _values(df, arm, size):
    part = df[(df.sources == arm[0]) & (df.acquisition == arm[1]) & (df.train_size == size)]
    return 100 * part.sort_values("repeat")["balanced_accuracy"].to_numpy()


def test_the_curve_at_every_size_is_the_paired_t_interval():
    df = _frame()
    curves = difference_curves(df, [(RAW_BALD, RAW_RANDOM)])
    assert curves["train_size"].tolist() == [10 * r for r in range(1, ROUNDS + 1)]
    assert set(curves["a_run"]) == {"cpu_run"} and set(curves["n"]) == {REPEATS}
    row = curves[curves.train_size == 30].iloc[0]
    a, b = _values(df, RAW_BALD, 30), _values(df, RAW_RANDOM, 30)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert row["mean"] == pytest.approx(np.mean(a - b))
    assert (row["low"], row["high"]) == pytest.approx((ci.low, ci.high))


def test_the_window_differences_each_repeat_s_mean_over_its_rounds():
    df = _frame()
    diff = window_difference(df, GAN_BALD, RAW_BALD, 4, 6)
    a = np.mean([_values(df, GAN_BALD, s) for s in (40, 50, 60)], axis=0)
    b = np.mean([_values(df, RAW_BALD, s) for s in (40, 50, 60)], axis=0)
    assert diff.diffs == pytest.approx(tuple(a - b)) and diff.train_size == 60
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert diff.interval == pytest.approx((ci.low, ci.high))
    with pytest.raises(UserError, match="lacks round"):
        window_difference(df[~((df.repeat == 1) & (df["round"] == 5))], GAN_BALD, RAW_BALD, 4, 6)


def test_correlation_and_unpaired_std_say_whether_pairing_helped():
    a = pd.Series([0.90, 0.92, 0.95, 0.91])
    assert arm_correlation(a, a - 0.01) == pytest.approx(1.0)
    assert arm_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(arm_correlation(a[:2], a[:2]))  # fewer than 3 repeats: no correlation
    table = comparison_table(_frame(), [(GAN_BALD, RAW_BALD)], sizes=[30], window=(4, 6))
    assert table["at"].tolist() == ["30", "rounds 4-6"]
    assert table["first_size"].tolist() == [30, 40] and table["last_size"].tolist() == [30, 60]
    at30 = table.iloc[0]
    a30, b30 = _values(_frame(), GAN_BALD, 30), _values(_frame(), RAW_BALD, 30)
    assert at30["corr_ab"] == pytest.approx(np.corrcoef(a30, b30)[0, 1])
    assert at30["std_unpaired_pp"] == pytest.approx(np.sqrt(np.var(a30, ddof=1) + np.var(b30, ddof=1)))


def test_one_panel_per_pair_on_one_y_scale_with_gpu_rows_marked():
    df = _frame()
    pairs = [(GAN_BALD, RAW_BALD), (RAW_BALD, RAW_RANDOM), (GAN_BALD, RAW_RANDOM)]
    curves = difference_curves(df, pairs)
    spans = device_spans(df, {"gpu_run": 3})
    assert spans == {"gpu_run": 30}
    fig = build_difference_figure(curves, comparison_table(df, pairs, [60], (4, 6)), device_from=spans,
                                  device_name="H100", ncols=2)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == len(pairs) and len(fig.axes) == 4  # a 2 x 2 grid, the spare panel hidden
    assert len({ax.get_ylim() for ax in shown}) == 1
    titles = [ax.get_title() for ax in shown]
    assert "A on H100 from 30 images" in titles[0] and "H100" not in titles[1] and "A on H100" in titles[2]
    assert "rounds 4-6" in shown[0].texts[0].get_text() and "60: " in shown[0].texts[0].get_text()
    with pytest.raises(UserError, match="no run 'elsewhere'"):
        device_spans(df, {"elsewhere": 1})


def test_the_runner_writes_figure_and_table_and_has_help(tmp_path, capsys):
    df = _frame()
    for run, part in df.groupby("run"):
        (tmp_path / run).mkdir()
        part.drop(columns="run").to_csv(tmp_path / run / "rounds.csv", index=False)
    csvs = [str(tmp_path / run / "rounds.csv") for run in ("cpu_run", "gpu_run")]
    out, table = tmp_path / "d.png", tmp_path / "d.csv"
    assert runner.main([*csvs, "--pair", "raw+g/bald", "raw/bald", "--at", "60", "--window", "4-6",
                        "--gpu-run", "gpu_run:3", "--out", str(out), "--table", str(table)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(table)["at"].tolist() == ["60", "rounds 4-6"]
    assert runner.main([*csvs, "--pair", "raw+g/bald", "raw/bald", "--out", str(out), "--table", str(table)]) == 2
    assert "--table holds the --at and --window rows" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        runner.main(["--help"])
    assert done.value.code == 0 and "corr_ab" in capsys.readouterr().out
