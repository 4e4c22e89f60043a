"""Precision as a setting of the run: validated by the config, fp32 by default, and a round's picks replayed in each
precision (the engine's precision tests: tests/acquire/test_precision.py)."""

import json

import pytest

from acquire.loop import ExperimentConfig
from tests.acquire.test_precision import needs_bf16


def test_an_unknown_precision_is_refused_by_the_config():
    with pytest.raises(ValueError, match="precision must be one of"):
        ExperimentConfig(precision="half")


def test_precision_defaults_to_fp32_and_a_config_saved_without_it_loads_as_fp32(tmp_path):
    assert ExperimentConfig().precision == "fp32"
    values = ExperimentConfig().to_dict()
    del values["precision"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    assert ExperimentConfig.load(path).precision == "fp32"


@needs_bf16
def test_replaying_a_round_re_derives_the_recorded_picks_and_counts_bf16_agreement(tmp_path, mnist_slice_dir):
    from runners import mnist_bald, precision_agreement
    out = tmp_path / "run"
    assert mnist_bald.main(["--rounds", "2", "--per-round", "5", "--epochs", "3", "--repeats", "1", "--mc-samples",
                            "4", "--pool-subset", "200", "--acquisitions", "random,bald", "--no-progress",
                            "--device", "cpu", "--data-dir", str(mnist_slice_dir), "--out", str(out)]) == 0
    assert precision_agreement.main([str(out), "--rounds", "1,2,3", "--device", "cpu", "--no-progress",
                                     "--data-dir", str(mnist_slice_dir)]) == 0
    rows = (out / "precision_agreement.csv").read_text().splitlines()
    assert rows[0] == ",".join(precision_agreement.COLUMNS)
    replayed = [row.split(",") for row in rows[1:]]
    assert [(r[1], r[3], r[4]) for r in replayed] == [("bald", "1", "0"), ("bald", "2", "5")]  # random: no MC
    assert all(r[-1] == "True" and 0 <= int(r[-2]) <= 5 for r in replayed)  # the fp32 replay is the record
