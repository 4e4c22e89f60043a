"""The generator table on a real MNIST slice: a row per cell, paired subsets, a rerun adds nothing, the summary."""

import pandas as pd
import pytest

from runners import gan_recipes

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rows_per_cell_rerun_continues_and_summary(tmp_path, tiny_train, tiny_test, monkeypatch, capsys):
    monkeypatch.setattr(gan_recipes, "load_train_test", lambda data_dir: (tiny_train, tiny_test, "mnist"))
    args = ["--per-class", "3", "--families", "small_dcgan", "--seeds", "0,1", "--images-shown", "300",
            "--quality-samples", "10", "--out", str(tmp_path), "--no-progress"]
    assert gan_recipes.main(args) == 0
    table = pd.read_csv(tmp_path / "table.csv")
    assert sorted(zip(table["recipe"], table["seed"])) == [("lowdata", 0), ("lowdata", 1), ("none", 0), ("none", 1)]
    assert table["near_copy_share"].between(0, 1).all() and (table["images_shown"] > 0).all()
    import json
    subsets = {(r, s): json.loads((tmp_path / "n3" / f"s{s}" / f"small_dcgan_{r}.json").read_text())["subset"]
               for r in ("lowdata", "none") for s in (0, 1)}
    assert subsets["lowdata", 0] == subsets["none", 0] != subsets["lowdata", 1]  # paired within a seed
    assert gan_recipes.main(args) == 0  # nothing left to do: the rows stay
    assert len(pd.read_csv(tmp_path / "table.csv")) == 4
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["seeds"]) == [2, 2]


@pytest.mark.parametrize("flags, message", [(["--recipes", "magic"], "recipes are lowdata, none"),
                                            (["--families", "vae"], "vae"),
                                            (["--per-class", "x"], "comma-separated integers")])
def test_bad_flags_are_one_line_errors(tmp_path, flags, message, capsys):
    assert gan_recipes.main(["--out", str(tmp_path), *flags]) == 2
    assert message in capsys.readouterr().err
