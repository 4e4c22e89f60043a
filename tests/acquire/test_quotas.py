"""Class quotas against slow, obviously-correct references: exact fractions for the apportionment, a sort per class
for the selection."""

from fractions import Fraction

import pytest
import torch

from acquire.batchbald import batchbald
from acquire.errors import UserError
from acquire.quotas import candidate_classes, quota_counts, quota_select, quota_wrap_selecting

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_counts(k, weights):
    """Largest remainder in exact fractions; leftover picks by (larger remainder, larger weight, lower class)."""
    weights = [Fraction(w) for w in weights]
    shares = [k * w / sum(weights) for w in weights]
    counts = [int(share) for share in shares]
    positive = [c for c, w in enumerate(weights) if w > 0]
    order = sorted(positive, key=lambda c: (-(shares[c] - counts[c]), -weights[c], c))
    for c in order[:k - sum(counts)]:
        counts[c] += 1
    return counts


def reference_select(scores, classes, k, counts):
    """Per class, its counts[c] best by a full sort; what a short class leaves goes to the best of the rest."""
    chosen = []
    for c, count in enumerate(counts):
        members = sorted((n for n in range(len(scores)) if classes[n] == c), key=lambda n: -scores[n])
        chosen += members[:count]
    rest = sorted((n for n in range(len(scores)) if n not in chosen), key=lambda n: -scores[n])
    chosen += rest[:k - len(chosen)]
    return sorted(chosen, key=lambda n: -scores[n])


@pytest.mark.parametrize("seed", range(40))
def test_quota_counts_match_exact_largest_remainder(seed):
    generator = torch.Generator().manual_seed(seed)
    K = int(torch.randint(1, 8, (), generator=generator))
    k = int(torch.randint(0, 30, (), generator=generator))
    weights_K = torch.randint(0, 6, (K,), generator=generator)
    weights_K[int(torch.randint(0, K, (), generator=generator))] += 1
    counts_K = quota_counts(k, weights_K)
    assert counts_K.dtype == torch.int64 and counts_K.tolist() == reference_counts(k, weights_K.tolist())
    assert quota_counts(k, weights_K.double() / 7).tolist() == counts_K.tolist()  # float weights, same shares


def test_quota_counts_ties_and_zero_weights():
    assert quota_counts(5, torch.ones(10)).tolist() == [1] * 5 + [0] * 5  # equal remainders: lower class first
    assert quota_counts(10, torch.ones(10)).tolist() == [1] * 10
    assert quota_counts(2, torch.ones(4)).tolist() == [1, 1, 0, 0]
    assert quota_counts(2, torch.tensor([1, 3])).tolist() == [0, 2]  # remainders .5 = .5: the larger weight
    assert quota_counts(2, torch.tensor([1, 1, 2])).tolist() == [1, 0, 1]  # .5 = .5, equal weights: lower class
    assert quota_counts(1, torch.tensor([1, 1, 2])).tolist() == [0, 0, 1]  # .5 first (largest remainder)
    assert quota_counts(4, torch.tensor([1, 0, 1])).tolist() == [2, 0, 2]
    assert quota_counts(7, torch.tensor([0.0, 1.0])).tolist() == [0, 7]
    assert quota_counts(0, torch.ones(3)).tolist() == [0, 0, 0]


@pytest.mark.parametrize("k, target", [(-1, torch.ones(3)), (2.0, torch.ones(3)), (True, torch.ones(3)),
                                       (3, torch.zeros(3)), (3, torch.tensor([1.0, -1.0])),
                                       (3, torch.tensor([1.0, float("nan")])), (3, torch.ones(2, 2)),
                                       (3, torch.ones(0))])
def test_quota_counts_refuses_bad_input(k, target):
    with pytest.raises(UserError, match="picks|target class"):
        quota_counts(k, target)


@pytest.mark.parametrize("seed", range(30))
def test_quota_select_matches_a_sort_per_class(seed):
    generator = torch.Generator().manual_seed(seed)
    N = int(torch.randint(1, 25, (), generator=generator))
    K = int(torch.randint(1, 5, (), generator=generator))
    k = int(torch.randint(0, N + 1, (), generator=generator))
    scores_N = torch.rand(N, generator=generator, dtype=torch.float64)
    classes_N = torch.randint(0, K, (N,), generator=generator)  # some classes short or empty at these sizes
    target_K = torch.randint(1, 4, (K,), generator=generator)
    index_k = quota_select(scores_N, classes_N, k, target_K, generator)
    expected = reference_select(scores_N.tolist(), classes_N.tolist(), k, reference_counts(k, target_K.tolist()))
    assert index_k.dtype == torch.int64 and index_k.tolist() == expected


def test_short_class_gives_its_picks_to_the_best_remaining():
    scores_N = torch.tensor([0.9, 0.1, 0.8, 0.7, 0.6, 0.5])
    classes_N = torch.tensor([0, 1, 2, 2, 2, 2])  # uniform 6 over 3 classes: class 1 has one candidate, class 0 one
    index_k = quota_select(scores_N, classes_N, 6, torch.ones(3), torch.Generator().manual_seed(0))
    assert sorted(index_k.tolist()) == [0, 1, 2, 3, 4, 5]
    index_k = quota_select(scores_N, classes_N, 4, torch.ones(4), torch.Generator().manual_seed(0))
    assert index_k.tolist() == [0, 2, 3, 1]  # class 3 has none: its pick goes to the best remaining (class 2's 0.7)


def test_quota_select_edge_sizes():
    generator = torch.Generator().manual_seed(0)
    assert quota_select(torch.tensor([0.3]), torch.tensor([2]), 1, torch.ones(3), generator).tolist() == [0]
    assert quota_select(torch.tensor([0.3]), torch.tensor([2]), 0, torch.ones(3), generator).tolist() == []
    scores_N = torch.rand(9, generator=generator)
    all_N = quota_select(scores_N, torch.arange(9) % 3, 9, torch.ones(3), generator)
    assert all_N.tolist() == scores_N.argsort(descending=True).tolist()


def test_ties_are_broken_at_random_within_the_quota():
    classes_N = torch.tensor([0, 0, 0, 1, 1])
    scores_N = torch.tensor([1.0, 1.0, 1.0, 0.0, 2.0])
    picks = {0: 0, 1: 0, 2: 0}
    for seed in range(300):
        index_k = quota_select(scores_N, classes_N, 2, torch.ones(2), torch.Generator().manual_seed(seed))
        assert index_k[0] == 4 and int(index_k[1]) in picks
        picks[int(index_k[1])] += 1
    assert all(70 < count < 130 for count in picks.values()), picks
    again = [quota_select(scores_N, classes_N, 2, torch.ones(2), torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(*again)


@pytest.mark.parametrize("scores, classes, k, match", [
    (torch.rand(4), torch.tensor([0, 1, 2, 3]), 2, "lie in 0..2"),
    (torch.rand(4), torch.tensor([0, 1, -1, 0]), 2, "lie in 0..2"),
    (torch.rand(4), torch.tensor([0.0, 1.0, 1.0, 0.0]), 2, "integer class"),
    (torch.rand(4), torch.tensor([0, 1, 1]), 2, "integer class"),
    (torch.rand(4), torch.tensor([0, 1, 1, 0]), 5, "cannot acquire 5"),
    (torch.tensor([0.1, float("nan"), 0.2, 0.3]), torch.tensor([0, 1, 1, 0]), 2, "finite score"),
])
def test_quota_select_refuses_bad_input(scores, classes, k, match):
    with pytest.raises(UserError, match=match):
        quota_select(scores, classes, k, torch.ones(3), torch.Generator().manual_seed(0))


def test_candidate_classes_known_labels_else_mc_mean_argmax():
    probs_NTK = torch.tensor([[[0.6, 0.4], [0.0, 1.0]],  # mean (0.3, 0.7): 1, though sample 0 says 0
                              [[0.5, 0.5], [0.5, 0.5]],  # tie: lower class
                              [[0.9, 0.1], [0.7, 0.3]]])
    assert candidate_classes(None, probs_NTK).tolist() == [1, 0, 0]
    assert candidate_classes(torch.tensor([-1, 1, -1]), probs_NTK).tolist() == [1, 1, 0]
    assert candidate_classes(torch.tensor([0, 1, 1]), None).tolist() == [0, 1, 1]
    with pytest.raises(UserError, match="probs_NTK"):
        candidate_classes(torch.tensor([0, -1, 1]), None)
    with pytest.raises(UserError, match="-1 where"):
        candidate_classes(torch.tensor([0, -2, 1]), probs_NTK)
    with pytest.raises(UserError, match="2 candidate labels for 3"):
        candidate_classes(torch.tensor([0, -1]), probs_NTK)


def top_bald_selecting(probs_NTK, k, generator, pool_size):
    """A deterministic selecting function: the k largest mean-max-probability complements."""
    assert len(probs_NTK) == pool_size
    return torch.topk(1 - probs_NTK.mean(1).max(-1).values, k).indices


@pytest.mark.parametrize("seed", range(15))
def test_wrapped_selecting_function_equals_quota_select_on_its_scores(seed):
    generator = torch.Generator().manual_seed(seed)
    N, K = int(torch.randint(1, 20, (), generator=generator)), 3
    k = int(torch.randint(0, N + 1, (), generator=generator))
    probs_NTK = torch.randn(N, 4, K, generator=generator, dtype=torch.float64).softmax(-1)
    classes_N = torch.randint(0, K, (N,), generator=generator)
    index_k = quota_wrap_selecting(top_bald_selecting, probs_NTK, k, generator, N, classes_N, torch.ones(K))
    scores_N = 1 - probs_NTK.mean(1).max(-1).values
    assert sorted(index_k.tolist()) == sorted(quota_select(scores_N, classes_N, k, torch.ones(K), generator).tolist())


def test_wrapper_calls_the_function_once_per_class_then_on_the_rest():
    calls = []

    def recording(probs_NTK, k, generator, pool_size):
        calls.append((None if probs_NTK is None else probs_NTK[:, 0, 0].tolist(), k, pool_size))
        return torch.randperm(pool_size, generator=generator)[:k]

    classes_N = torch.tensor([2, 0, 2, 2, 0, 2])
    probs_NTK = torch.arange(6.0).view(6, 1, 1).expand(6, 2, 3)
    index_k = quota_wrap_selecting(recording, probs_NTK, 5, torch.Generator().manual_seed(0), 6, classes_N,
                                   torch.tensor([1, 1, 1]))
    assert calls[:2] == [([1.0, 4.0], 2, 2), ([0.0, 2.0, 3.0, 5.0], 1, 4)]  # counts 2, 2, 1; class 1 has none
    assert calls[2][1:] == (2, 3) and len(index_k.unique()) == 5  # class 1's 2 picks among the 3 not yet chosen
    calls.clear()
    quota_wrap_selecting(recording, None, 2, torch.Generator().manual_seed(0), 6, classes_N, torch.ones(3))
    assert calls == [(None, 1, 2), (None, 1, 5)]  # counts 1, 1, 0: class 1 is empty, its pick among the other 5


def test_wrapped_batchbald_keeps_the_quotas():
    generator = torch.Generator().manual_seed(3)
    probs_NTK = torch.randn(30, 5, 3, generator=generator).softmax(-1)
    classes_N = torch.arange(30) % 3
    index_k = quota_wrap_selecting(batchbald, probs_NTK, 6, generator, 30, classes_N, torch.tensor([1, 1, 4]))
    assert len(index_k.unique()) == 6
    assert torch.bincount(classes_N[index_k], minlength=3).tolist() == [1, 1, 4]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_quotas_on_the_gpu_as_on_the_cpu():
    generator = torch.Generator().manual_seed(0)
    scores_N = torch.rand(40, generator=generator, dtype=torch.float64)
    classes_N = torch.randint(0, 4, (40,), generator=generator)
    probs_NTK = torch.randn(40, 3, 4, generator=generator).softmax(-1)
    cuda_rng = torch.Generator(device="cuda").manual_seed(0)
    index_k = quota_select(scores_N.cuda(), classes_N.cuda(), 10, torch.ones(4), cuda_rng)
    assert index_k.is_cuda
    assert index_k.tolist() == quota_select(scores_N, classes_N, 10, torch.ones(4), generator).tolist()
    assert candidate_classes(None, probs_NTK.cuda()).tolist() == candidate_classes(None, probs_NTK).tolist()
    wrapped_k = quota_wrap_selecting(top_bald_selecting, probs_NTK.cuda(), 9, cuda_rng, 40, classes_N.cuda(),
                                     torch.ones(4))
    assert wrapped_k.tolist() == quota_wrap_selecting(top_bald_selecting, probs_NTK, 9, generator, 40, classes_N,
                                                      torch.ones(4)).tolist()


def test_running_totals_follow_the_target_round_after_round():
    target_K = torch.tensor([5, 3, 2, 1])
    acquired_K = torch.zeros(4, dtype=torch.long)
    for round_ in range(1, 21):
        acquired_K += quota_counts(3, target_K, acquired_K)
        assert acquired_K.tolist() == reference_counts(3 * round_, target_K.tolist())
    per_round_K = quota_counts(3, target_K) * 20  # without the totals: the same classes win every round's rounding
    assert per_round_K.tolist() == [20, 20, 20, 0] and acquired_K.tolist() == [27, 16, 11, 6]  # 27.3 16.4 10.9 5.5


def test_running_totals_catch_up_and_never_take_back():
    assert quota_counts(6, torch.ones(3), torch.tensor([10, 0, 0])).tolist() == [0, 3, 3]  # needs 0, 5, 5 > 6
    assert quota_counts(4, torch.ones(2), torch.tensor([1, 3])).tolist() == [3, 1]  # totals 4, 4
    assert quota_counts(0, torch.ones(2), torch.tensor([1, 3])).tolist() == [0, 0]
    for bad in (torch.tensor([1, 2, 3]), torch.tensor([1.0, 2.0]), torch.tensor([-1, 2])):
        with pytest.raises(UserError, match="acquired counts"):
            quota_counts(4, torch.ones(2), bad)


def test_quota_select_and_wrapper_pass_the_running_totals_on():
    generator = torch.Generator().manual_seed(0)
    classes_N = torch.arange(12) % 3
    index_k = quota_select(torch.rand(12, generator=generator), classes_N, 3, torch.ones(3), generator,
                           torch.tensor([2, 0, 1]))
    assert sorted(classes_N[index_k].tolist()) == [1, 1, 2]
    probs_NTK = torch.rand(12, 2, 3, generator=generator)
    index_k = quota_wrap_selecting(top_bald_selecting, probs_NTK, 3, generator, 12, classes_N, torch.ones(3),
                                   torch.tensor([2, 0, 1]))
    assert sorted(classes_N[index_k].tolist()) == [1, 1, 2]
