"""BADGE and core-set against independent references: autograd for the gradient embeddings, exact D² probabilities
for k-means++ (by frequency over seeded draws), a loop over all distances for k-center greedy."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from acquire import diversity
from acquire.diversity import gradient_embeddings, kcenter_greedy, kmeans_pp_select
from acquire.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def points(seed, N, D):
    return torch.randn(N, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_gradient_embeddings_are_the_last_layer_gradient_at_the_predicted_label():
    N, D, K = 9, 5, 4
    features_ND = points(0, N, D)
    weight_KD = points(1, K, D)
    probs_NK = (features_ND @ weight_KD.t()).softmax(-1)
    emb_NE = gradient_embeddings(features_ND, probs_NK)
    assert emb_NE.shape == (N, K * D) and emb_NE.dtype == torch.float64
    for n in range(N):
        weight = weight_KD.clone().requires_grad_()
        logits_K = weight @ features_ND[n]
        F.cross_entropy(logits_K.unsqueeze(0), logits_K.argmax().unsqueeze(0)).backward()
        assert torch.allclose(emb_NE[n], weight.grad.flatten(), atol=1e-12)


def test_gradient_embeddings_keep_float32_and_refuse_mismatched_probabilities():
    emb_NE = gradient_embeddings(torch.ones(3, 2), torch.tensor([[0.5, 0.5], [0.2, 0.8], [1.0, 0.0]]))
    assert emb_NE.dtype == torch.float32
    expected_NE = torch.tensor([[-0.5, -0.5, 0.5, 0.5], [0.2, 0.2, -0.2, -0.2], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(emb_NE, expected_NE)  # first row: a tie, the predicted label is the lower class
    with pytest.raises(UserError, match="same N"):
        gradient_embeddings(torch.ones(3, 2), torch.ones(2, 2))
    with pytest.raises(UserError, match=r"features \[N, D\]"):
        gradient_embeddings(torch.ones(3), torch.ones(3, 2))


def d2_probabilities(emb, chosen):
    """Exact probability of each candidate being next: squared distance to the nearest chosen, normalised."""
    nearest = [min(sum((a - b) ** 2 for a, b in zip(emb[n], emb[c])) for c in chosen) for n in range(len(emb))]
    return [d / sum(nearest) for d in nearest]


def test_kmeans_pp_starts_at_the_largest_norm_then_samples_by_squared_distance():
    emb_NE = points(2, 5, 2)
    emb = emb_NE.tolist()
    first = max(range(5), key=lambda n: sum(x * x for x in emb[n]))
    draws = 3000
    counts = {}
    for seed in range(draws):
        index_k = kmeans_pp_select(emb_NE, 3, torch.Generator().manual_seed(seed))
        assert index_k[0] == first and len(index_k.unique()) == 3
        counts[tuple(index_k[1:].tolist())] = counts.get(tuple(index_k[1:].tolist()), 0) + 1
    second = d2_probabilities(emb, [first])
    for j, l in itertools.permutations(range(5), 2):
        exact = second[j] * d2_probabilities(emb, [first, j])[l] if first not in (j, l) else 0.0
        observed = counts.get((j, l), 0) / draws
        assert abs(observed - exact) <= 4 * math.sqrt(exact * (1 - exact) / draws) + 1e-9, (j, l, observed, exact)


def test_kmeans_pp_edge_cases():
    generator = torch.Generator().manual_seed(0)
    assert kmeans_pp_select(points(3, 1, 4), 1, generator).tolist() == [0]
    assert kmeans_pp_select(points(3, 4, 4), 0, generator).tolist() == []
    assert sorted(kmeans_pp_select(points(3, 6, 4), 6, generator).tolist()) == list(range(6))  # k == N
    duplicates_NE = torch.ones(5, 3)
    assert sorted(kmeans_pp_select(duplicates_NE, 5, generator).tolist()) == list(range(5))  # all distances 0
    one_apart_NE = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    for seed in range(20):
        index_k = kmeans_pp_select(one_apart_NE, 2, torch.Generator().manual_seed(seed))
        assert int(index_k[0]) in (0, 1) and int(index_k[1]) in (2, 3)  # never a duplicate of the chosen point
    firsts = {int(kmeans_pp_select(one_apart_NE, 1, torch.Generator().manual_seed(s))[0]) for s in range(20)}
    assert firsts == {0, 1}  # equal norms: at random


def reference_kcenter(features, k, labelled):
    """Sener & Savarese's greedy by brute force: every distance recomputed at every step."""
    def distance(a, b):
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    chosen = []
    if not labelled:
        mean = [sum(column) / len(features) for column in zip(*features)]
        chosen.append(max(range(len(features)), key=lambda n: (distance(features[n], mean), -n)))
    while len(chosen) < k:
        centres = labelled + [features[c] for c in chosen]
        free = [n for n in range(len(features)) if n not in chosen]
        chosen.append(max(free, key=lambda n: (min(distance(features[n], c) for c in centres), -n)))
    return chosen[:k]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("chunk_elements", [2 ** 22, 5])
def test_kcenter_greedy_matches_a_loop_over_all_distances(monkeypatch, seed, chunk_elements):
    monkeypatch.setattr(diversity, "CHUNK_ELEMENTS", chunk_elements)
    generator = torch.Generator().manual_seed(seed)
    N, D = int(torch.randint(1, 15, (), generator=generator)), int(torch.randint(1, 4, (), generator=generator))
    M = int(torch.randint(0, 4, (), generator=generator))
    k = int(torch.randint(0, N + 1, (), generator=generator))
    features_ND, labelled_MD = points(seed, N, D), points(100 + seed, M, D)
    index_k = kcenter_greedy(features_ND, k, labelled_MD if M else None)
    assert index_k.dtype == torch.int64
    assert index_k.tolist() == reference_kcenter(features_ND.tolist(), k, labelled_MD.tolist())
    if not M:
        assert torch.equal(kcenter_greedy(features_ND, k, torch.zeros(0, D)), index_k)


def test_kcenter_greedy_edge_cases():
    features_ND = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [5.0, 0.0]])
    assert kcenter_greedy(features_ND, 4, features_ND[:1]).tolist() == [3, 1, 0, 2]  # then all at 0: lowest first
    assert kcenter_greedy(torch.ones(3, 2), 3).tolist() == [0, 1, 2]  # all equal: lowest position first
    assert kcenter_greedy(torch.ones(1, 2), 1).tolist() == [0]
    assert kcenter_greedy(torch.ones(0, 2), 0).tolist() == []


@pytest.mark.parametrize("select", [lambda x, k: kcenter_greedy(x, k), lambda x, k: kmeans_pp_select(
    x, k, torch.Generator().manual_seed(0))])
@pytest.mark.parametrize("features, k, match", [
    (torch.ones(3, 2), 4, "cannot select 4 of 3"), (torch.ones(3, 2), -1, "cannot select"),
    (torch.ones(3), 1, r"float features \[N, E\]"), (torch.ones(3, 2, dtype=torch.long), 1, "float features"),
    (torch.tensor([[0.0, float("nan")]]), 1, "NaN"),
])
def test_selection_refuses_bad_input(select, features, k, match):
    with pytest.raises(UserError, match=match):
        select(features, k)


def test_kcenter_refuses_labelled_features_of_another_width():
    with pytest.raises(UserError, match="D = 2"):
        kcenter_greedy(torch.ones(3, 2), 1, torch.ones(4, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_diversity_on_the_gpu_as_on_the_cpu():
    features_ND, labelled_MD = points(0, 60, 6), points(1, 5, 6)
    probs_NK = points(2, 60, 3).softmax(-1)
    emb_NE = gradient_embeddings(features_ND.cuda(), probs_NK.cuda())
    assert emb_NE.is_cuda
    torch.testing.assert_close(emb_NE.cpu(), gradient_embeddings(features_ND, probs_NK))
    for labelled in (None, labelled_MD):
        cuda_k = kcenter_greedy(features_ND.cuda(), 12, None if labelled is None else labelled.cuda())
        assert cuda_k.is_cuda and cuda_k.tolist() == kcenter_greedy(features_ND, 12, labelled).tolist()
    index_k = kmeans_pp_select(emb_NE, 12, torch.Generator(device="cuda").manual_seed(0))
    assert index_k.is_cuda and len(index_k.unique()) == 12 and int(index_k[0]) == int(emb_NE.norm(dim=1).argmax())
