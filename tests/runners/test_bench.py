"""`python -m runners.bench` reports every figure the README's table quotes, each beside this device's GEMM floor."""

import json

import pytest

from acquire.networks import new_model
from runners import bench


def test_flop_counts_of_gal_s_cnn_match_a_hand_count():
    flops = bench.galcnn_flops(new_model(0, "cpu"), samples=20)
    conv1 = 2 * 25 * 25 * 32 * 1 * 4 * 4       # 28 -> 25, 1 -> 32 channels, 4x4 kernels
    conv2 = 2 * 22 * 22 * 32 * 32 * 4 * 4      # 25 -> 22
    head = 2 * (32 * 11 * 11 * 128 + 128 * 10)  # after the 2x2 max-pool: 32 x 11 x 11 features
    assert flops["trunk"] == conv1 + conv2 and flops["head"] == head
    assert flops["fused_candidate_sample"] == (conv1 + conv2) / 20 + head


def test_a_small_bench_reports_scoring_training_and_the_gemm_peak(tmp_path, mnist_dir, one_thread, capsys):
    args = ["--candidates", "64", "--mc-samples", "2", "--repeats", "1", "--train-images", "64", "--train-epochs",
            "1", "--gemm-size", "256", "--skip-round", "--memory-sizes", "0", "--device", "cpu", "--data-dir",
            str(mnist_dir),
            "--out", str(tmp_path)]
    assert bench.main(args) == 0
    report = json.loads((tmp_path / "bench-cpu.json").read_text())
    precisions = set(report["gemm_gflops"])
    assert "fp32" in precisions and set(report["training"]["images_per_second"]) == precisions
    assert {"fused", "naive"} <= set(report["mc_dropout"]["samples_per_second"])
    assert set(report["diversity"]["seconds_per_round"]) == {"badge", "coreset", "bald_topk"}
    assert ("fused_bf16" in report["mc_dropout"]["samples_per_second"]) == ("bf16" in precisions)
    for fractions in (report["mc_dropout"]["fraction_of_gemm_peak"], report["training"]["fraction_of_gemm_peak"]):
        assert all(0 < value < 100 for value in fractions.values())  # a ratio to the floor, not a raw rate
    printed = capsys.readouterr().out
    assert "of the fp32 GEMM peak" in printed and "x the MC-dropout pass over the same candidates" in printed


@pytest.mark.parametrize("flags, message", [
    (["--mc-samples", "0"], "--mc-samples must be >= 1, got 0"),
    (["--candidates", "-5"], "--candidates must be >= 1, got -5"),
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["--gemm-size", "0"], "--gemm-size must be >= 1, got 0"),
    (["--memory-sizes", "100,x"], "--memory-sizes must be comma-separated integers, got '100,x'"),
    (["--memory-sizes", "-100"], "--memory-sizes must be >= 0, got -100"),
])
def test_counts_that_cannot_be_measured_are_one_line_errors_before_any_work(tmp_path, capsys, flags, message):
    assert bench.main([*flags, "--device", "cpu", "--data-dir", str(tmp_path / "no-data"), "--out",
                       str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "out").exists()
