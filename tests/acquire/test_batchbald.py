"""BatchBALD against a brute-force greedy reference that enumerates every label configuration."""

import itertools

import numpy as np
import pytest
import torch

from acquire import functions
from acquire.batchbald import JointBatch, batchbald, draw_rows, joint_entropies
from acquire.functions import REGISTRY, get_acquisition

pytestmark = pytest.mark.usefixtures("one_thread")


def random_probs(seed, N=8, T=6, K=3, scale=2.0):
    logits_NTK = torch.randn(N, T, K, generator=torch.Generator().manual_seed(seed)) * scale
    return logits_NTK.softmax(-1)


def normalised(probs_NTK):
    """float64 probabilities [N, T, K] whose rows sum to 1, as BatchBALD sees them."""
    p = probs_NTK.double()
    return p / p.sum(-1, keepdim=True)


def brute_force_information(p, members):
    """I(y_members; ω) for p [N, T, K] (numpy float64): sums over all K^b label tuples explicitly."""
    N, T, K = p.shape
    joint_entropy = 0.0
    for labels in itertools.product(range(K), repeat=len(members)):
        per_network = np.ones(T)
        for member, label in zip(members, labels):
            per_network = per_network * p[member, :, label]
        joint = per_network.mean()
        if joint > 0:
            joint_entropy -= joint * np.log(joint)
    logs = np.log(np.where(p > 0, p, 1.0))
    conditional = sum(-(p[m] * logs[m]).sum(-1).mean() for m in members)
    return joint_entropy - conditional


def brute_force_greedy(probs_NTK, k):
    """Greedy argmax of brute_force_information, and the smallest gap between a step's best and runner-up."""
    p = normalised(probs_NTK).numpy()
    chosen, gaps = [], []
    for _ in range(k):
        gains = sorted((brute_force_information(p, chosen + [n]), n) for n in range(len(p)) if n not in chosen)
        chosen.append(gains[-1][1])
        gaps.append(gains[-1][0] - gains[-2][0] if len(gains) > 1 else np.inf)
    return chosen, min(gaps)


def batch_of(probs_NTK, members, rng=None, max_configurations=10 ** 6, num_samples=10 ** 4):
    """The JointBatch of `members`, and probs_TNK [T, N, K] float64."""
    probs_TNK = normalised(probs_NTK).transpose(0, 1).contiguous()
    batch = JointBatch.empty(probs_TNK.shape[0], probs_TNK.device)
    for member in members:
        batch = batch.add(probs_TNK[:, member], rng, max_configurations, num_samples)
    return batch, probs_TNK


@pytest.mark.parametrize("seed", range(6))
def test_greedy_selection_matches_brute_force(seed):
    probs_NTK = random_probs(seed)
    expected, gap = brute_force_greedy(probs_NTK, 3)
    assert gap > 1e-6
    assert batchbald(probs_NTK, 3, torch.Generator().manual_seed(0)).tolist() == expected


def test_joint_entropies_match_enumeration_and_do_not_depend_on_chunking():
    probs_NTK = random_probs(0, N=7, T=5, K=3)
    members = [4, 1, 6]
    batch, probs_TNK = batch_of(probs_NTK, members)
    assert len(batch.weight_C) == 27 and not batch.sampled
    p = normalised(probs_NTK).numpy()
    logs = np.log(p)
    expected = [brute_force_information(p, members + [n]) + sum(-(p[m] * logs[m]).sum(-1).mean() for m in members + [n])
                for n in range(7)]
    np.testing.assert_allclose(joint_entropies(batch, probs_TNK).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(joint_entropies(batch, probs_TNK, chunk_elements=1).numpy(), expected, rtol=1e-12)


def test_one_pick_is_the_bald_argmax():
    for seed in range(5):
        probs_NTK = random_probs(seed, N=200, T=20, K=10)
        chosen = batchbald(probs_NTK, 1, torch.Generator().manual_seed(seed))
        assert chosen.tolist() == [int(functions.bald(probs_NTK).argmax())]


def test_certain_labels_and_exact_zeros_stay_finite():
    """One-hot predictions (0·log 0, configurations of probability zero, which the exact table drops) tie
    often, so each pick is checked to be a greedy optimum given the picks before it."""
    probs_NTK = torch.eye(3)[torch.randint(3, (8, 6), generator=torch.Generator().manual_seed(0))]
    probs_NTK[:4] = random_probs(1, N=4)
    p = normalised(probs_NTK).numpy()
    chosen = batchbald(probs_NTK, 5, torch.Generator().manual_seed(0)).tolist()
    for step in range(5):
        gains = [brute_force_information(p, chosen[:step] + [n]) for n in range(8) if n not in chosen[:step]]
        assert brute_force_information(p, chosen[:step + 1]) == pytest.approx(max(gains), abs=1e-12)


def test_sampled_joint_entropy_is_unbiased():
    """Force sampling (max_configurations=1) for a batch of 3 members whose 27 configurations are also
    enumerated exactly. Each sampled estimate of H(y_S, y_n) is a mean of M bounded i.i.d. terms; the mean
    of R independent estimates is then within 4 of its standard errors of the truth (about 6e-5 two-sided
    for a normal mean; the draws are seeded, so the test is deterministic)."""
    probs_NTK = random_probs(3, N=8, T=6, K=3)
    members = [0, 5, 2]
    exact_batch, probs_TNK = batch_of(probs_NTK, members)
    exact_N = joint_entropies(exact_batch, probs_TNK)
    R, M = 400, 400
    estimates_RN = []
    for seed in range(R):
        batch, _ = batch_of(probs_NTK, members, torch.Generator().manual_seed(seed), max_configurations=1,
                            num_samples=M)
        assert batch.sampled and len(batch.weight_C) == M
        estimates_RN.append(joint_entropies(batch, probs_TNK))
    estimates_RN = torch.stack(estimates_RN)
    standard_error_N = estimates_RN.std(0) / R ** 0.5
    assert (standard_error_N > 0).all()
    assert ((estimates_RN.mean(0) - exact_N).abs() <= 4 * standard_error_N).all()
    # ... and one estimate from many samples is already close: M = 20,000 = 50 M cuts the spread by sqrt(50).
    large, _ = batch_of(probs_NTK, members, torch.Generator().manual_seed(0), max_configurations=1,
                        num_samples=20_000)
    assert ((joint_entropies(large, probs_TNK) - exact_N).abs() <= 4 * estimates_RN.std(0) / 50 ** 0.5).all()


def test_sampled_selection_agrees_with_exact_when_the_gaps_are_clear():
    probs_NTK = random_probs(10, N=8, T=6, K=3, scale=3.0)
    expected, gap = brute_force_greedy(probs_NTK, 4)
    assert gap > 0.02  # sampling errors at M = 20,000 are a few thousandths of a nat
    chosen = batchbald(probs_NTK, 4, torch.Generator().manual_seed(0), max_configurations=2, num_samples=20_000)
    assert chosen.tolist() == expected


def test_no_duplicates_even_when_every_candidate_is_the_same():
    same_NTK = random_probs(0, N=1).expand(12, -1, -1)
    for k in (1, 5, 12):
        chosen = batchbald(same_NTK, k, torch.Generator().manual_seed(k))
        assert len(set(chosen.tolist())) == k
    everything = batchbald(random_probs(1, N=10, K=2), 10, torch.Generator().manual_seed(0), max_configurations=64,
                           num_samples=500)
    assert sorted(everything.tolist()) == list(range(10))


def test_deterministic_for_a_generator_and_ties_broken_at_random():
    probs_NTK = random_probs(2, N=300, T=20, K=10)
    runs = [batchbald(probs_NTK, 6, torch.Generator().manual_seed(7), max_configurations=100, num_samples=300)
            for _ in range(2)]
    assert runs[0].tolist() == runs[1].tolist()
    tied_NTK = torch.full((40, 4, 3), 1 / 3)  # no information anywhere: every pick is a tie
    picks = {tuple(batchbald(tied_NTK, 3, torch.Generator().manual_seed(s)).tolist()) for s in range(5)}
    assert len(picks) == 5 and all(max(p) > 2 for p in picks)


def test_draw_rows_never_draws_a_zero_weight():
    weights_RX = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    uniform_RS = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.999, 1.0]], dtype=torch.float64)  # 1.0: past the end
    assert draw_rows(weights_RX, uniform_RS).tolist() == [[1, 1, 1], [0, 0, 0]]


def test_registered_as_a_selecting_function():
    acquisition = REGISTRY["batchbald"]
    assert acquisition.selects and acquisition.needs_mc
    assert get_acquisition("acquire.batchbald:batchbald").selects
    acquisition.probe(k=5, num_samples=20, num_classes=10)
    chosen, score = acquisition.choose(random_probs(0, N=30), 30, 4, torch.Generator().manual_seed(0))
    assert score is None and len(set(chosen.tolist())) == 4


def test_bench_times_one_round():
    from runners.bench import bench_batchbald
    report = bench_batchbald(random_probs(0, N=40, T=5, K=4), 3, torch.device("cpu"))
    assert report["candidates"] == 40 and report["mc_samples"] == 5 and report["k"] == 3
    assert report["seconds_per_round"] > 0
