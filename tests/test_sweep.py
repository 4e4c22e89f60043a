import csv

import pandas as pd
import pytest

from acquire.plotting import plot_sweep, summarise_sweep
from acquire.rundir import RunDirectoryError
from acquire.sweep import Sweep

COLUMNS = ["method", "n", "repeat", "accuracy"]
KEYS = ["method", "n", "repeat"]
CELLS = [{"method": m, "n": n, "repeat": r} for m in ("a", "b") for n in (5, 10) for r in range(2)]


def fake_measure(calls):
    def measure(cell):
        calls.append(cell)
        return {"accuracy": cell["n"] / 100 + (0.01 if cell["method"] == "b" else 0) + cell["repeat"] / 1000}
    return measure


def test_sweep_writes_one_row_per_cell(tmp_path):
    calls = []
    sweep = Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=False)
    path = sweep.run(CELLS, fake_measure(calls), progress=False)
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == len(CELLS) == len(calls)
    assert rows[0] == {"method": "a", "n": "5", "repeat": "0", "accuracy": "0.05"}


def test_killed_sweep_resumes_without_redoing_cells(tmp_path):
    calls = []
    sweep = Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=False)

    def dies_on_sixth(cell):
        if len(calls) == 5:
            raise KeyboardInterrupt
        return fake_measure(calls)(cell)

    with pytest.raises(KeyboardInterrupt):
        sweep.run(CELLS, dies_on_sixth, progress=False)
    sweep.close()
    with open(tmp_path / "results.csv", "a") as f:
        f.write("b,5,")  # a half-written line, as a kill mid-write leaves
    resumed_calls = []
    resumed = Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=True)
    path = resumed.run(CELLS, fake_measure(resumed_calls), progress=False)
    assert len(resumed_calls) == len(CELLS) - 5
    whole = tmp_path / "whole"
    Sweep(whole, {"x": 1}, COLUMNS, KEYS, resume=False).run(CELLS, fake_measure([]), progress=False)
    assert pd.read_csv(path).equals(pd.read_csv(whole / "results.csv"))


def test_sweep_refuses_overwrite_and_changed_config(tmp_path):
    Sweep(tmp_path, {"x": 1, "repeats": 2}, COLUMNS, KEYS, resume=False).close()
    with pytest.raises(RunDirectoryError, match="--resume"):
        Sweep(tmp_path, {"x": 1, "repeats": 2}, COLUMNS, KEYS, resume=False)
    with pytest.raises(RunDirectoryError, match="x: saved 1, now 2"):
        Sweep(tmp_path, {"x": 2, "repeats": 2}, COLUMNS, KEYS, resume=True)
    Sweep(tmp_path, {"x": 1, "repeats": 3}, COLUMNS, KEYS, resume=True, resumable={"repeats"}).close()


def test_second_process_on_same_directory_is_refused(tmp_path):
    first = Sweep(tmp_path, {}, COLUMNS, KEYS, resume=False)
    with pytest.raises(RunDirectoryError, match="another process"):
        Sweep(tmp_path, {}, COLUMNS, KEYS, resume=True)
    first.close()


def test_summary_and_plot_match_rows(tmp_path):
    sweep = Sweep(tmp_path, {}, COLUMNS, KEYS, resume=False)
    df = pd.read_csv(sweep.run(CELLS, fake_measure([]), progress=False))
    summary = summarise_sweep(df, x="n", line="method")
    row = summary[(summary.method == "b") & (summary.n == 10)].iloc[0]
    assert row["mean"] == pytest.approx(0.1105) and row["std"] == pytest.approx(0.0005) and row["n_repeats"] == 2
    out = plot_sweep(df, tmp_path / "fig.png", x="n", line="method", log_x=True)
    assert out.stat().st_size > 1000
    with pytest.raises(ValueError, match="missing column"):
        summarise_sweep(df, x="ratio", line="method")
