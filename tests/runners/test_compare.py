"""`python -m runners.compare`: the table, the CSV, the notes, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from runners import compare

VALUES = {("raw", "random"): [0.88, 0.89, 0.90], ("raw", "bald"): [0.90, 0.89, 0.93],
          ("raw+pggan", "bald"): [0.93, 0.94, 0.96]}


def _run(directory, arms, config=None, sizes=(300, 500)):
    directory.mkdir()
    rows = [{"sources": s, "acquisition": a, "repeat": r, "seed": 0, "round": size // 10, "train_size": size,
             "balanced_accuracy": v - (500 - size) / 1000, "accuracy": v}
            for (s, a) in arms for r, v in enumerate(VALUES[(s, a)]) for size in sizes]
    pd.DataFrame(rows).to_csv(directory / "rounds.csv", index=False)
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    return directory / "rounds.csv"


@pytest.fixture
def csvs(tmp_path):
    raw = _run(tmp_path / "raw", [("raw", "random"), ("raw", "bald")], {"seeding": "paired"})
    pggan = _run(tmp_path / "pggan", [("raw+pggan", "bald")], {"seeding": "paired"})
    return [str(raw), str(pggan)]


def test_pairs_table_and_csv(csvs, tmp_path, capsys):
    out = tmp_path / "table.csv"
    assert compare.main(csvs + ["--at", "500", "--pair", "raw+pggan/bald", "raw/random",
                                "--pair", "raw/bald", "raw/random", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "ddof = 1" in lines[0]
    assert lines[1].split()[:3] == ["A", "B", "at"]
    assert lines[2].split()[:6] == ["raw+pggan/bald", "raw/random", "500", "3", "+5.33", "0.58"]
    assert "raw+pggan/bald is above raw/random by 3.90 to 6.77 points (95% CI, n = 3 paired repeats)" in lines[2]
    assert "no difference shown: the 95% CI −2.13 to +5.46 points includes 0 (n = 3)" in lines[3]
    assert lines[-1] == f"wrote {out}"
    table = pd.read_csv(out)
    assert list(table["a"]) == ["raw+pggan/bald", "raw/bald"] and (table["metric"] == "balanced_accuracy").all()
    assert table.loc[0, "diffs_pp"] == "5.0000;5.0000;6.0000" and table.loc[0, "std_pp_ddof1"] == pytest.approx(0.57735)


def test_all_pairs_at_two_sizes(csvs, capsys):
    assert compare.main(csvs + ["--at", "300,500", "--all-pairs"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[:3] for row in rows] == [
        [a, b, size] for size in ("300", "500")
        for a, b in (("raw+pggan/bald", "raw/bald"), ("raw+pggan/bald", "raw/random"), ("raw/bald", "raw/random"))]


def test_notes_when_repeats_did_not_share_draws(tmp_path, capsys):
    raw = _run(tmp_path / "raw", [("raw", "random")], {})  # saved before seeding was recorded: per_source
    pggan = _run(tmp_path / "pggan", [("raw+pggan", "bald")])  # no config.json
    assert compare.main([str(raw), str(pggan), "--at", "500", "--pair", "raw+pggan/bald", "raw/random"]) == 0
    assert "whether the repeats shared draws is not recorded" in capsys.readouterr().out
    (tmp_path / "pggan" / "config.json").write_text("{}")
    assert compare.main([str(raw), str(pggan), "--at", "500", "--pair", "raw+pggan/bald", "raw/random"]) == 0
    assert "did not share draws (seeding 'per_source'" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--at", "700", "--pair", "raw/bald", "raw/random"], "raw/bald has no repeat at train_size 700"),
    (["--at", "500", "--pair", "raw/bal", "raw/random"], "unknown arm 'raw/bal'"),
    (["--at", "500", "--pair", "raw", "raw/random"], "must be SOURCES/ACQUISITION"),
    (["--at", "900", "--all-pairs"], "0 arm(s) reached train_size 900, need two; e.g. --at 500"),
])
def test_user_errors_are_one_line_and_exit_2(csvs, args, message, capsys):
    assert compare.main(csvs + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_the_same_arm_of_two_runs_is_named_with_its_run(tmp_path, capsys):
    fp32 = _run(tmp_path / "fp32", [("raw", "bald")], {"seeding": "paired"})
    bf16 = _run(tmp_path / "bf16", [("raw", "random")], {"seeding": "paired"})
    bf16.write_text(bf16.read_text().replace("random", "bald"))  # the same arm, other values
    assert compare.main([str(fp32), str(bf16), "--at", "500", "--pair", "bf16:raw/bald", "fp32:raw/bald"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:5] == ["bf16:raw/bald", "fp32:raw/bald", "500", "3", "-1.67"]
    assert "did not share draws" not in out  # both runs seed repeats alike: the pairs share their draws
    assert compare.main([str(fp32), str(bf16), "--at", "500", "--pair", "raw/bald", "fp32:raw/bald"]) == 2
    assert "unknown arm 'raw/bald'" in capsys.readouterr().err


def test_sweep_cells_against_a_baseline_cell_paired_by_repeat(tmp_path, capsys):
    from runners import compare_cells
    cells = [{"size": 500, "mode": mode, "gan": gan, "ratio": ratio, "repeat": r, "accuracy": value}
             for mode, gan, ratio, values in [("none", "none", 0.0, [0.90, 0.92, 0.94]),
                                             ("replace", "pggan", 1.0, [0.80, 0.81, 0.83]),
                                             ("add", "pggan", 1.0, [0.91, 0.91, 0.95])]
             for r, value in enumerate(values)]
    csv, out = tmp_path / "results.csv", tmp_path / "comparisons.csv"
    pd.DataFrame(cells).to_csv(csv, index=False)
    assert compare_cells.main([str(csv), "--arm", "mode,gan,ratio", "--size", "size", "--against", "mode=none",
                               "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index("a")
    assert table.loc["mode=replace gan=pggan ratio=1.0", "diffs_pp"] == "-10.0000;-11.0000;-11.0000"
    assert table.loc["mode=replace gan=pggan ratio=1.0", "verdict"].startswith("mode=replace gan=pggan ratio=1.0 is below")
    assert table.loc["mode=add gan=pggan ratio=1.0", "verdict"].startswith("no difference shown")
    assert compare_cells.main([str(csv), "--arm", "mode", "--size", "size", "--against", "mode=nothing"]) == 2
    assert "no row matches --against mode=nothing" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (lambda df: pd.concat([df, df.iloc[[3]]]), "has several rows per repeat at size = 500 (a row given twice?)"),
    (lambda df: df.assign(accuracy=df["accuracy"].where(df.index != 4, float("inf"))), "holds 'inf' (row 6)"),
    (lambda df: df.assign(accuracy=df["accuracy"].astype(object).where(df.index != 4, "abc")), "holds 'abc'"),
])
def test_sweep_cells_refuse_a_duplicated_row_and_a_value_that_is_not_a_finite_number(tmp_path, capsys, change,
                                                                                      message):
    from runners import compare_cells
    cells = [{"size": 500, "mode": mode, "repeat": r, "accuracy": 0.9 + r / 100}
             for mode in ("none", "replace") for r in range(3)]
    csv = tmp_path / "results.csv"
    change(pd.DataFrame(cells)).to_csv(csv, index=False)
    assert compare_cells.main([str(csv), "--arm", "mode", "--size", "size", "--against", "mode=none"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_holm_adds_paired_p_values_adjusted_over_the_whole_table(csvs, tmp_path, capsys):
    from scipy import stats
    out = tmp_path / "table.csv"
    assert compare.main(csvs + ["--at", "300,500", "--holm", "--pair", "raw+pggan/bald", "raw/random",
                                "--pair", "raw/bald", "raw/random", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "p Holm" in printed.splitlines()[1] and "over the 4 comparisons" in printed
    table = pd.read_csv(out)
    p_pggan = stats.ttest_rel(VALUES[("raw+pggan", "bald")], VALUES[("raw", "random")]).pvalue
    p_bald = stats.ttest_rel(VALUES[("raw", "bald")], VALUES[("raw", "random")]).pvalue
    assert table["p"].tolist() == pytest.approx([p_pggan, p_bald] * 2)
    # Holm over 4: the two smallest (the pggan rows, equal) times 4, then the bald rows times 2 (monotone)
    assert table["p_holm"].tolist() == pytest.approx([4 * p_pggan, max(4 * p_pggan, 2 * p_bald)] * 2)


def test_without_holm_the_csv_keeps_its_columns(csvs, tmp_path):
    out = tmp_path / "table.csv"
    assert compare.main(csvs + ["--at", "500", "--pair", "raw/bald", "raw/random", "--out", str(out)]) == 0
    assert "p_holm" not in pd.read_csv(out).columns


def test_an_empty_metric_cell_is_named_not_taken_for_a_missing_repeat(csvs, capsys):
    df = pd.read_csv(csvs[0])
    df.loc[df["acquisition"] == "bald", "balanced_accuracy"] = None
    df.to_csv(csvs[0], index=False)
    assert compare.main(csvs + ["--at", "500", "--pair", "raw/bald", "raw/random"]) == 2
    err = capsys.readouterr().err
    assert f"{csvs[0]}: column balanced_accuracy is empty or NaN" in err and "no repeat" not in err
    assert len(err.strip().splitlines()) == 1


def test_generated_gain_refuses_a_bad_real_only_value_and_a_run_without_it(csvs, capsys):
    df = pd.read_csv(csvs[1])
    df["balanced_accuracy_real_only"] = df["balanced_accuracy"]
    df.loc[2, "balanced_accuracy_real_only"] = 1.7
    df.to_csv(csvs[1], index=False)
    assert compare.main([csvs[1], "--at", "500", "--generated-gain"]) == 2
    assert f"{csvs[1]}: column balanced_accuracy_real_only holds '1.7' (row 4" in capsys.readouterr().err
    df.loc[2, "balanced_accuracy_real_only"] = 0.9
    df.to_csv(csvs[1], index=False)
    assert compare.main([csvs[1], "--at", "500", "--generated-gain"]) == 0
    capsys.readouterr()
    assert compare.main(csvs + ["--at", "500", "--generated-gain"]) == 2
    err = capsys.readouterr().err
    assert "needs a run made with --real-only" in err and "run(s) raw have none" in err
