"""runners.gan_classes: per-class label agreement of committed checkpoints, on the quality report's samples."""

import pandas as pd
import pytest
from tests.gans.test_gan_sources import save_small_gan

from gans.checkpoint import load_checkpoint
from gans.quality import REAL_ROW, Judge, QualityConfig
from runners import gan_classes


def test_per_digit_agreement_averages_to_the_quality_reports_label_agreement(tmp_path, tiny_train, tiny_test,
                                                                            monkeypatch, capsys):
    monkeypatch.setattr(gan_classes, "load_train_test", lambda data_dir: (tiny_train, tiny_test, "mnist"))
    gan_dir = save_small_gan(tmp_path / "zoo")
    out = tmp_path / "by_class.csv"
    assert gan_classes.main(["--gan-dir", str(gan_dir), "--quality-samples", "6", "--device", "cpu",
                             "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert sorted(table.source.unique()) == sorted([REAL_ROW, "small_dcgan"])
    assert (table.groupby("source")["class"].apply(sorted) == [list(range(10))] * 2).all()
    assert (table.samples == 6).all() and table.agreement.between(0, 1).all()
    judge = Judge(tiny_train, tiny_test, QualityConfig(samples_per_class=6), "cpu")
    generator, _ = load_checkpoint(gan_dir / "small_dcgan.pt", "small_dcgan")
    expected = judge.measures(generator, "small_dcgan")["label_agreement"]
    assert abs(table[table.source == "small_dcgan"].agreement.mean() - expected) < 1e-9
    wrong = table[table.agreement < 1]
    assert (wrong.most_confused_with != wrong["class"]).all() and (wrong.most_confused_with >= 0).all()
    assert "small_dcgan" in capsys.readouterr().out


def test_a_missing_checkpoint_is_named_with_the_command_that_trains_it(tmp_path, capsys):
    assert gan_classes.main(["--gans", "pggan", "--gan-dir", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint for pggan" in err and "python -m runners.train_gans" in err
    assert not any(tmp_path.iterdir())  # refused before any work: nothing written


def test_a_gan_of_other_classes_is_refused_before_the_judge_trains(tmp_path, monkeypatch, tiny_train, tiny_test,
                                                                    capsys):
    gan_dir = save_small_gan(tmp_path / "zoo")
    four = tiny_train.subset((tiny_train.labels_N < 4).nonzero().squeeze(1))
    monkeypatch.setattr(gan_classes, "load_train_test", lambda data_dir: (four, four, "four"))
    monkeypatch.setattr(gan_classes.Judge, "reference", lambda self: pytest.fail("the judge must not train"))
    assert gan_classes.main(["--gan-dir", str(gan_dir), "--gans", "small_dcgan"]) == 2
    assert "images of 10 classes, but the data has 1x28x28 images of 4 classes" in capsys.readouterr().err
