"""`python -m runners.gal_table`: images needed to reach a test error, per repeat, beside Gal et al.'s Table 1."""

import pandas as pd

from runners import gal_table


def test_images_to_reach_an_error_per_repeat_with_lower_bounds_and_gal_s_numbers(tmp_path, capsys):
    accuracy = {("bald", 0): [0.80, 0.91, 0.96], ("bald", 1): [0.85, 0.89, 0.90],
                ("variation_ratios_mode", 0): [0.92, 0.93, 0.94]}
    rows = [{"sources": "raw", "acquisition": acq, "repeat": r, "train_size": size, "accuracy": value,
             "balanced_accuracy": value} for (acq, r), values in accuracy.items()
            for size, value in zip((20, 30, 40), values)]
    csv, out = tmp_path / "rounds.csv", tmp_path / "table.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert gal_table.main([str(csv), "--errors", "10,5", "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index(["acquisition", "error_pct"])
    bald10, bald5 = table.loc[("bald", 10.0)], table.loc[("bald", 5.0)]
    assert bald10["train_size_per_repeat"] == "30;40" and float(bald10["mean_train_size"]) == 35
    assert float(bald10["mean_acquired"]) == 15 and bald10["gal_2017"] == 145  # 20 initial images
    assert bald5["train_size_per_repeat"] == "40;>40" and bald5["mean_train_size"] == ">40.0" and bald5["reached"] == 1
    assert str(bald10["mean_curve_train_size"]) == "30" and bald5["mean_curve_train_size"] == ">40"  # mean .825 .90 .93
    assert table.loc[("variation_ratios_mode", 10.0), "gal_2017"] == 120  # both forms sit beside Gal's one
    capsys.readouterr()
    assert gal_table.main([str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: does not exist" in capsys.readouterr().err
    assert gal_table.main([str(tmp_path)]) == 2
    assert f"{tmp_path}: is a directory" in capsys.readouterr().err


def test_runs_with_the_same_arms_stay_apart(tmp_path):
    """Two runs' BALD arms (say shared and per-image masks) are two rows, one per run directory, never pooled."""
    for name, values in (("shared", [0.80, 0.95]), ("per_image", [0.92, 0.96])):
        rows = [{"sources": "raw", "acquisition": "bald", "repeat": 0, "train_size": size, "accuracy": value,
                 "balanced_accuracy": value} for size, value in zip((20, 30), values)]
        (tmp_path / name).mkdir()
        pd.DataFrame(rows).to_csv(tmp_path / name / "rounds.csv", index=False)
    out = tmp_path / "table.csv"
    assert gal_table.main([str(tmp_path / n / "rounds.csv") for n in ("shared", "per_image")] + ["--errors", "10",
                                                                                               "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype={"train_size_per_repeat": str}).set_index("run")
    assert table.loc["shared", "train_size_per_repeat"] == "30"
    assert table.loc["per_image", "train_size_per_repeat"] == "20"


def test_acquired_counts_the_initial_images_the_run_recorded(tmp_path, capsys):
    rows = [{"sources": "raw", "acquisition": "bald", "repeat": 0, "train_size": size, "accuracy": value}
            for size, value in ((10, 0.5), (20, 0.95))]
    csv, out = tmp_path / "rounds.csv", tmp_path / "table.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    assert gal_table.main([str(csv), "--errors", "10", "--out", str(out)]) == 2  # Gal's 20 > the first size, 10
    assert ("Gal et al.'s initial size 20 (the run records none) is more than its smallest train_size 10, so "
            "acquired would be negative; give --initial, at most 10") in capsys.readouterr().err
    assert gal_table.main([str(csv), "--errors", "10", "--out", str(out), "--initial", "5"]) == 0
    assert float(pd.read_csv(out)["mean_acquired"].iloc[0]) == 15
    (tmp_path / "config.json").write_text('{"initial": 0}')
    assert gal_table.main([str(csv), "--errors", "10", "--out", str(out)]) == 0
    assert float(pd.read_csv(out)["mean_acquired"].iloc[0]) == 20  # an empty start: every image was acquired
    capsys.readouterr()
    assert gal_table.main([str(csv), "--errors", "10", "--out", str(out), "--initial", "20"]) == 2
    err = capsys.readouterr().err
    assert "--initial 20 contradicts its config.json's \"initial\" 0; drop --initial" in err
    assert len(err.strip().splitlines()) == 1 and float(pd.read_csv(out)["mean_acquired"].iloc[0]) == 20
    (tmp_path / "config.json").unlink()
    assert gal_table.main([str(csv), "--errors", "10", "--initial", "15"]) == 2
    assert "--initial 15 is more than its smallest train_size 10" in capsys.readouterr().err
    assert gal_table.main([str(csv), "--initial=-5"]) == 2
    (tmp_path / "config.json").write_text('{"initial": "twenty"}')
    assert gal_table.main([str(csv)]) == 2
    assert "config.json's \"initial\" is 'twenty'" in capsys.readouterr().err


def test_errors_that_are_not_percentages_are_refused_before_anything_is_written(tmp_path, capsys):
    csv, out = tmp_path / "rounds.csv", tmp_path / "table.csv"
    pd.DataFrame([{"sources": "raw", "acquisition": "bald", "repeat": 0, "train_size": 20, "accuracy": 0.9,
                   "balanced_accuracy": 0.9}]).to_csv(csv, index=False)
    for errors in ("-10,5", "0", "100", "250"):
        assert gal_table.main([str(csv), "--errors", errors, "--out", str(out)]) == 2
        assert "between 0 and 100" in capsys.readouterr().err
    for errors in ("nan", "inf,5", "1e400"):
        try:
            gal_table.main([str(csv), "--errors", errors, "--out", str(out)])
        except SystemExit as stop:
            assert stop.code == 2
        assert "finite numbers" in capsys.readouterr().err
    assert not out.exists()
