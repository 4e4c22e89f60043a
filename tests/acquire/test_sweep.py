import argparse
import csv
import json
import re

import pandas as pd
import pytest

from acquire.errors import UserError
from analysis.curves import plot_sweep, summarise_sweep
from acquire.rundir import RunDirectoryError
from acquire.sweep import Sweep, SweepSettings

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


@pytest.mark.parametrize("left, kept, reruns", [
    ("method,n,repeat,accuracy\na,5,0,0.05\na,5,1,0.0", "method,n,repeat,accuracy\na,5,0,0.05\n", 1),  # torn row
    ("method,n,rep", None, 2),  # a torn header: the file goes, and the next row writes the header
    ("", None, 2),
])
def test_a_torn_last_line_is_dropped_and_its_cell_rerun(tmp_path, left, kept, reruns):
    Sweep(tmp_path, {}, COLUMNS, KEYS, resume=False).close()
    (tmp_path / "results.csv").write_text(left)
    calls = []
    with Sweep(tmp_path, {}, COLUMNS, KEYS, resume=True) as sweep:
        assert (sweep.csv_path.read_text() if sweep.csv_path.exists() else None) == kept
        sweep.run(CELLS[:2], fake_measure(calls), progress=False)
    assert len(calls) == reruns
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows == ["method,n,repeat,accuracy", "a,5,0,0.05", "a,5,1,0.051000000000000004"]


def test_a_wrong_header_is_refused_and_left_as_it_is(tmp_path):
    Sweep(tmp_path, {}, COLUMNS, KEYS, resume=False).close()
    (tmp_path / "results.csv").write_text("size,accuracy\n500,0.9\n")
    with pytest.raises(ValueError, match="has columns"):
        Sweep(tmp_path, {}, COLUMNS, KEYS, resume=True)
    assert (tmp_path / "results.csv").read_text() == "size,accuracy\n500,0.9\n"


def test_a_fresh_sweep_needs_an_empty_directory_and_resume_a_saved_one(tmp_path):
    with pytest.raises(RunDirectoryError, match="holds no sweep to continue"):
        Sweep(tmp_path / "none", {}, COLUMNS, KEYS, resume=True)
    assert not (tmp_path / "none").exists()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not empty"):
        Sweep(tmp_path, {}, COLUMNS, KEYS, resume=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_resumable_change_is_saved_and_nothing_else_is_rewritten(tmp_path):
    with Sweep(tmp_path, {"x": 1, "repeats": 1}, COLUMNS, KEYS, resume=False) as sweep:
        sweep.run(CELLS[:1], fake_measure([]), progress=False)
    csv_before = (tmp_path / "results.csv").stat().st_mtime_ns
    config_before = (tmp_path / "config.json").stat().st_mtime_ns
    Sweep(tmp_path, {"x": 1, "repeats": 1}, COLUMNS, KEYS, resume=True, resumable={"repeats"}).close()
    assert (tmp_path / "config.json").stat().st_mtime_ns == config_before
    Sweep(tmp_path, {"x": 1, "repeats": 2}, COLUMNS, KEYS, resume=True, resumable={"repeats"}).close()
    assert json.loads((tmp_path / "config.json").read_text()) == {"x": 1, "repeats": 2}
    assert (tmp_path / "results.csv").stat().st_mtime_ns == csv_before


# ----------------------------------------------------------------------------------------- SweepSettings

SETTINGS = SweepSettings({"sizes": [5, 10], "repeats": 2, "lr": 0.1}, {"paper": {}, "quick": {"sizes": [5]}},
                         resumable=frozenset({"repeats"}), derived=frozenset({"digest"}))


def build(values):
    if not all(isinstance(size, int) and size > 0 for size in values["sizes"]):
        raise UserError(f"--sizes must be positive integers, got {values['sizes']}")
    return {**values, "digest": "abc"}


def args(out, resume=False, preset=None, **flags):
    return argparse.Namespace(out=out, resume=resume, preset=preset,
                              **{name: flags.get(name) for name in SETTINGS.defaults})


def saved_sweep(out, **changes):
    out.mkdir(exist_ok=True)
    config = {"sizes": [5, 10], "repeats": 2, "lr": 0.1, "digest": "abc", **changes}
    (out / "config.json").write_text(json.dumps(config))
    return out


def test_settings_of_a_new_sweep_are_defaults_then_preset_then_flags(tmp_path):
    config, saved = SETTINGS.resolve(args(tmp_path, preset="quick", lr=0.5), build)
    assert saved is None and config == {"sizes": [5], "repeats": 2, "lr": 0.5, "digest": "abc"}


def test_resume_takes_the_saved_settings_and_the_resumable_flags(tmp_path):
    out = saved_sweep(tmp_path, sizes=[10], lr=0.2)
    config, saved = SETTINGS.resolve(args(out, resume=True, repeats=5, lr=0.2), build)
    assert config == {"sizes": [10], "repeats": 5, "lr": 0.2, "digest": "abc"}
    SETTINGS.check_resume(args(out, resume=True, repeats=5, lr=0.2), saved, config)  # a flag equal to the saved one


@pytest.mark.parametrize("flags, message", [
    ({"lr": 0.3}, "lr: saved 0.2, now 0.3): drop --lr; --resume alone continues"),
    ({"preset": "quick"}, "sizes: saved [10, 20], now [5]): drop --preset quick"),
    ({"preset": "paper", "sizes": [10, 20]}, "lr: saved 0.2, now 0.1): drop --preset paper"),
])
def test_resume_refuses_other_settings_naming_the_flag(tmp_path, flags, message):
    out = saved_sweep(tmp_path, sizes=[10, 20], lr=0.2)
    namespace = args(out, resume=True, **flags)
    config, saved = SETTINGS.resolve(namespace, build)
    with pytest.raises(RunDirectoryError, match=re.escape(message)):
        SETTINGS.check_resume(namespace, saved, config)


def test_resume_refuses_a_changed_input_that_no_flag_sets(tmp_path):
    out = saved_sweep(tmp_path, digest="old")
    config, saved = SETTINGS.resolve(args(out, resume=True), build)
    with pytest.raises(RunDirectoryError, match="digest: saved 'old', now 'abc'.*no flag sets these"):
        SETTINGS.check_resume(args(out, resume=True), saved, config)


def test_a_setting_that_older_configs_lack_is_their_default_and_a_resume_keeps_it(tmp_path):
    settings = SweepSettings({"sizes": [5], "precision": "fp32"}, {"paper": {}}, optional=frozenset({"precision"}))
    (tmp_path / "config.json").write_text(json.dumps({"sizes": [5]}))  # saved before precision existed
    as_saved = argparse.Namespace(out=tmp_path, resume=True, preset=None, sizes=None, precision=None)
    config, saved = settings.resolve(as_saved, dict)
    assert config == saved == {"sizes": [5], "precision": "fp32"}
    settings.check_resume(as_saved, saved, config)
    bf16 = argparse.Namespace(**{**vars(as_saved), "precision": "bf16"})
    config, saved = settings.resolve(bf16, dict)
    with pytest.raises(RunDirectoryError, match=re.escape("(precision: saved 'fp32', now 'bf16'): drop --precision")):
        settings.check_resume(bf16, saved, config)
    Sweep(tmp_path, {"sizes": [5], "precision": "fp32"}, COLUMNS, KEYS, resume=True,
          older_defaults=settings.older_defaults).close()
    assert json.loads((tmp_path / "config.json").read_text()) == {"sizes": [5]}  # left as it was
    with pytest.raises(RunDirectoryError, match="precision: saved 'fp32', now 'bf16'"):
        Sweep(tmp_path, config, COLUMNS, KEYS, resume=True, older_defaults=settings.older_defaults)


@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, "has unknown key(s) colour"),
    ({"digest": None, "lr": None}, "has no digest, lr"),
    ({"sizes": [5, "x"]}, "holds invalid settings (--sizes must be positive integers"),
])
def test_resume_refuses_a_damaged_config(tmp_path, changes, message):
    out = saved_sweep(tmp_path)
    config = json.loads((out / "config.json").read_text())
    config.update(changes)
    (out / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    with pytest.raises(RunDirectoryError, match=re.escape(message)):
        SETTINGS.resolve(args(out, resume=True), build)


def test_resume_on_other_data_is_refused_and_an_older_sweep_gets_its_data_recorded(tmp_path):
    digests = {"train": "aa", "test": "bb"}
    with Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=False, data_digests=digests) as sweep:
        sweep.run(CELLS[:2], fake_measure([]), progress=False)
    assert json.loads((tmp_path / "config.json").read_text()) == {"x": 1, "data_digests": digests}
    with pytest.raises(RunDirectoryError, match="on other data: train differ"):
        Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=True, data_digests={**digests, "train": "ab"})
    Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=True, data_digests=digests).close()
    (tmp_path / "config.json").write_text(json.dumps({"x": 1}))  # saved before digests were recorded, or edited
    with pytest.raises(RunDirectoryError, match="records no data_digests.*add --record-data-digests once"):
        Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=True, data_digests=digests)
    Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=True, data_digests=digests, adopt_data=True).close()
    assert json.loads((tmp_path / "config.json").read_text())["data_digests"] == digests


def test_an_emptied_data_digests_record_is_refused_not_ignored(tmp_path):
    digests = {"train": "aa", "test": "bb"}
    Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=False, data_digests=digests).close()
    (tmp_path / "config.json").write_text(json.dumps({"x": 1, "data_digests": {}}))
    with pytest.raises(RunDirectoryError, match="empty data_digests"):
        Sweep(tmp_path, {"x": 1}, COLUMNS, KEYS, resume=True, data_digests=digests)
