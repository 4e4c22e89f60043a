"""The label-fidelity gate against a candidate-by-candidate loop."""

import math

import pytest
import torch

from acquire.errors import UserError
from acquire.label_gate import gated_share_by_class, label_gate

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_gate(labels, generated, classifier, judge, threshold):
    return [not (generated[n] and classifier[n][labels[n]] < threshold and judge[n][labels[n]] < threshold)
            for n in range(len(labels))]


def reference_shares(keep, labels, generated, K):
    shares = []
    for c in range(K):
        mine = [n for n in range(len(labels)) if generated[n] and labels[n] == c]
        shares.append(sum(not keep[n] for n in mine) / len(mine) if mine else math.nan)
    return shares


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("threshold", [0.5, 0.2, 1.0])
def test_gate_and_shares_match_a_loop(seed, threshold):
    generator = torch.Generator().manual_seed(seed)
    N, K = int(torch.randint(1, 30, (), generator=generator)), int(torch.randint(2, 6, (), generator=generator))
    generated_N = torch.rand(N, generator=generator) < 0.7
    labels_N = torch.where(generated_N, torch.randint(0, K, (N,), generator=generator), -1)
    classifier_NK = (torch.randn(N, K, generator=generator) * 2).softmax(-1)
    judge_NK = (torch.randn(N, K, generator=generator) * 2).softmax(-1)
    keep_N = label_gate(labels_N, generated_N, classifier_NK, judge_NK, threshold)
    expected = reference_gate(labels_N.tolist(), generated_N.tolist(), classifier_NK.tolist(), judge_NK.tolist(),
                              threshold)
    assert keep_N.dtype == torch.bool and keep_N.tolist() == expected
    share_K = gated_share_by_class(keep_N, labels_N, generated_N, K)
    assert share_K.dtype == torch.float64
    assert share_K.tolist() == pytest.approx(reference_shares(expected, labels_N.tolist(), generated_N.tolist(), K),
                                             nan_ok=True)


def test_dropped_only_when_both_contradict_and_real_never():
    confident_1 = torch.tensor([0.1, 0.9])
    confident_0 = torch.tensor([0.9, 0.1])
    classifier_NK = torch.stack([confident_1, confident_1, confident_0, confident_1, torch.tensor([0.5, 0.5])])
    judge_NK = torch.stack([confident_1, confident_0, confident_1, confident_1, torch.tensor([0.4, 0.6])])
    labels_N = torch.tensor([0, 0, 0, 0, 0])
    generated_N = torch.tensor([True, True, True, False, True])
    keep_N = label_gate(labels_N, generated_N, classifier_NK, judge_NK)
    # both contradict; judge agrees; classifier agrees; real (never gated); p = threshold is no contradiction
    assert keep_N.tolist() == [False, True, True, True, True]
    assert gated_share_by_class(keep_N, labels_N, generated_N, 3).tolist() == pytest.approx([0.25, math.nan, math.nan],
                                                                                             nan_ok=True)


def test_no_generated_candidate_keeps_all():
    probs_NK = torch.full((3, 4), 0.25)
    keep_N = label_gate(torch.full((3,), -1), torch.zeros(3, dtype=torch.bool), probs_NK, probs_NK)
    assert keep_N.all()
    assert torch.isnan(gated_share_by_class(keep_N, torch.full((3,), -1), torch.zeros(3, dtype=torch.bool), 4)).all()


@pytest.mark.parametrize("change, match", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"), ({"threshold": float("nan")}, "threshold"),
    ({"labels": torch.tensor([0, 3])}, "lie in 0..2"), ({"labels": torch.tensor([-1, 1])}, "lie in 0..2"),
    ({"generated": torch.tensor([1, 1])}, "one bool"), ({"judge": torch.full((2, 4), 0.25)}, "judge has 4"),
    ({"judge": torch.full((3, 3), 0.3)}, "judge's probabilities"),
])
def test_gate_refuses_bad_input(change, match):
    arguments = {"labels": torch.tensor([0, 1]), "generated": torch.tensor([True, True]),
                 "classifier": torch.full((2, 3), 1 / 3), "judge": torch.full((2, 3), 1 / 3), "threshold": 0.5}
    arguments.update(change)
    with pytest.raises(UserError, match=match):
        label_gate(arguments["labels"], arguments["generated"], arguments["classifier"], arguments["judge"],
                   arguments["threshold"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gate_on_the_gpu_as_on_the_cpu():
    generator = torch.Generator().manual_seed(0)
    generated_N = torch.rand(50, generator=generator) < 0.7
    labels_N = torch.where(generated_N, torch.randint(0, 4, (50,), generator=generator), -1)
    classifier_NK, judge_NK = (torch.randn(2, 50, 4, generator=generator) * 2).softmax(-1)
    keep_N = label_gate(labels_N, generated_N, classifier_NK, judge_NK)
    cuda_keep_N = label_gate(labels_N.cuda(), generated_N.cuda(), classifier_NK.cuda(), judge_NK.cuda())
    assert cuda_keep_N.is_cuda and cuda_keep_N.tolist() == keep_N.tolist()
    share_K = gated_share_by_class(cuda_keep_N, labels_N.cuda(), generated_N.cuda(), 4)
    torch.testing.assert_close(share_K.cpu(), gated_share_by_class(keep_N, labels_N, generated_N, 4), equal_nan=True)


def test_shares_refuse_labels_outside_the_classes():
    with pytest.raises(UserError, match="lie in 0..1"):
        gated_share_by_class(torch.tensor([True, False]), torch.tensor([0, 2]), torch.tensor([True, True]), 2)
