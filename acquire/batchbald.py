"""BatchBALD (Kirsch, van Amersfoort & Gal 2019): greedy batches that maximise I(y_1..y_b; ω).

With T sampled networks ω_t (consistent MC dropout), the joint predictive of a batch is the mixture
p(y_1..y_b) = mean_t Π_i p_t(y_i), and

    I(y_1..y_b; ω) = H(y_1..y_b) - Σ_i mean_t H(p_t(y_i)).

Greedy step b adds the candidate n maximising H(y_S, y_n) - mean_t H(p_t(y_n)), S the b already chosen.
The batch's configurations y_c of y_S are kept as `JointBatch`: their posterior over networks
p(ω_t | y_c), a weight and log p(y_c). Since y_n is independent of y_S given ω,

    H(y_S, y_n) = H(y_S) + Σ_c weight_c · H(Σ_t p(ω_t | y_c) p_t(y_n)),

one matrix product [C, T] x [T, N·K] and C·N·K logarithms for all N candidates. While the batch has at
most `max_configurations` configurations they are all enumerated (weight_c = p(y_c), exact); beyond,
`num_samples` = M configurations are drawn from the joint itself (weight 1/M, H(y_S) ≈ -mean log p(y_c)),
which makes the estimate of H(y_S, y_n) unbiased. Each later batch member extends every sampled
configuration by y ~ p(y | y_c) = Σ_t p(ω_t | y_c) p_t(y): ancestral sampling from the same mixture as
drawing a network ω_t and then each y_i ~ p_t(y_i), with the network summed out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TIE_NATS = 1e-10
"""Scores closer than this to the best are tied: far below any meaningful difference in information, and
above the float64 rounding of a score (a sum of C·K <= 10^5 terms, typically ~1e-13)."""


@dataclass(frozen=True)
class JointBatch:
    """Configurations of the chosen batch's labels: posterior_CT [C, T] = p(ω_t | y_c) (rows sum to 1),
    weight_C [C] (p(y_c) when exact, 1/M when sampled) and log_prob_C [C] = log p(y_c)."""

    posterior_CT: torch.Tensor
    weight_C: torch.Tensor
    log_prob_C: torch.Tensor
    sampled: bool = False

    @classmethod
    def empty(cls, num_networks: int, device: torch.device) -> JointBatch:
        """The empty batch: one configuration, probability 1, uniform over the T = num_networks networks."""
        return cls(torch.full((1, num_networks), 1.0 / num_networks, dtype=torch.float64, device=device),
                   torch.ones(1, dtype=torch.float64, device=device),
                   torch.zeros(1, dtype=torch.float64, device=device))

    def entropy(self) -> torch.Tensor:
        """H(y_S) (exact, or its unbiased estimate from the sampled configurations), a float64 scalar."""
        return -(self.weight_C * self.log_prob_C).sum()

    def add(self, probs_TK: torch.Tensor, rng: torch.Generator, max_configurations: int,
            num_samples: int) -> JointBatch:
        """The batch with one more member, whose T networks' class probabilities are probs_TK [T, K] (float64).

        Exact while the nonzero configurations number at most max_configurations; then num_samples
        configurations drawn from the joint (draws from `rng`, on its device).
        """
        K = probs_TK.shape[1]
        predictive_CK = self.posterior_CT @ probs_TK  # p(y | y_c)
        if self.sampled:
            index_M = draw_rows(predictive_CK, uniform(rng, len(predictive_CK), probs_TK.device))
            return self._extend(torch.arange(len(index_M), device=index_M.device), index_M, predictive_CK,
                                probs_TK, self.weight_C)
        joint_X = (self.weight_C.unsqueeze(1) * predictive_CK).flatten()  # p(y_c, y), X = C·K
        nonzero_X = joint_X.nonzero().squeeze(1)
        if len(nonzero_X) <= max_configurations:
            configuration, label = nonzero_X // K, nonzero_X % K
            return self._extend(configuration, label, predictive_CK, probs_TK, joint_X[nonzero_X])
        drawn_M = draw_rows(joint_X.unsqueeze(0), uniform(rng, num_samples, probs_TK.device).unsqueeze(0))[0]
        weight_M = torch.full((num_samples,), 1.0 / num_samples, dtype=torch.float64, device=probs_TK.device)
        return self._extend(drawn_M // K, drawn_M % K, predictive_CK, probs_TK, weight_M, sampled=True)

    def _extend(self, configuration_X: torch.Tensor, label_X: torch.Tensor, predictive_CK: torch.Tensor,
                probs_TK: torch.Tensor, weight_X: torch.Tensor, sampled: bool | None = None) -> JointBatch:
        """Configurations (y_c, y) for c = configuration_X [X], y = label_X [X]: Bayes' rule over the networks."""
        predictive_X = predictive_CK[configuration_X, label_X]
        posterior_XT = self.posterior_CT[configuration_X] * probs_TK[:, label_X].t() / predictive_X.unsqueeze(1)
        return JointBatch(posterior_XT, weight_X, self.log_prob_C[configuration_X] + predictive_X.log(),
                          self.sampled if sampled is None else sampled)


def uniform(rng: torch.Generator, n: int, device: torch.device) -> torch.Tensor:
    """n float64 uniforms in [0, 1) [n], drawn on the rng's device and moved to `device`."""
    return torch.rand(n, generator=rng, device=rng.device, dtype=torch.float64).to(device)


def draw_rows(weights_RX: torch.Tensor, uniform_RS: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draws index_RS [R, S] from the unnormalised nonnegative rows weights_RX [R, X], one per
    uniform; never an entry of weight zero (even when rounding pushes a uniform past the last one)."""
    cdf_RX = weights_RX.cumsum(-1)
    index_RS = torch.searchsorted(cdf_RX, uniform_RS.reshape(len(cdf_RX), -1) * cdf_RX[:, -1:], right=True)
    last_positive_R1 = (weights_RX > 0).cumsum(-1).argmax(-1, keepdim=True)
    return torch.minimum(index_RS, last_positive_R1).reshape(uniform_RS.shape)


def conditional_entropies(probs_TNK: torch.Tensor) -> torch.Tensor:
    """mean_t H(p_t(y_n)) [N] for probabilities probs_TNK [T, N, K] (float64)."""
    return -torch.special.xlogy(probs_TNK, probs_TNK).sum(-1).mean(0)


def joint_entropies(batch: JointBatch, probs_TNK: torch.Tensor, chunk_elements: int = 2 ** 21) -> torch.Tensor:
    """H(y_S, y_n) [N] for every candidate n, probs_TNK [T, N, K] (float64), S the batch.

    Candidates go in chunks of B with C·B·K <= chunk_elements (at least one), so two float64 buffers
    [C, B·K] bound the memory.
    """
    T, N, K = probs_TNK.shape
    C = len(batch.weight_C)
    chunk = max(1, chunk_elements // (C * K))
    entropy_N = torch.empty(N, dtype=torch.float64, device=probs_TNK.device)
    predictive_CX = log_CX = None
    for start in range(0, N, chunk):
        probs_TX = probs_TNK[:, start:start + chunk].reshape(T, -1)  # a view: X = B·K
        if predictive_CX is None or predictive_CX.shape[1] != probs_TX.shape[1]:
            predictive_CX, log_CX = (torch.empty(C, probs_TX.shape[1], dtype=torch.float64, device=probs_TNK.device)
                                     for _ in range(2))
        torch.mm(batch.posterior_CT, probs_TX, out=predictive_CX)  # p(y_n | y_c)
        torch.log(predictive_CX.clamp_min_(1e-300), out=log_CX).mul_(predictive_CX)  # 0 log 0 -> ~1e-298
        entropy_N[start:start + chunk] = -(batch.weight_C @ log_CX).view(-1, K).sum(-1)
    return batch.entropy() + entropy_N


def random_argmax(scores_N: torch.Tensor, rng: torch.Generator) -> int:
    """Position of the largest score; scores within TIE_NATS of it are tied and one is drawn uniformly."""
    tied = (scores_N >= scores_N.max() - TIE_NATS).nonzero().squeeze(1)
    return int(tied[torch.randint(len(tied), (1,), generator=rng, device=rng.device).item()])


def batchbald(probs_NTK: torch.Tensor, k: int, rng: torch.Generator, pool_size: int | None = None, *,
              max_configurations: int = 10_000, num_samples: int = 10_000,
              chunk_elements: int = 2 ** 21) -> torch.Tensor:
    """k distinct positions index_k [k] chosen greedily to maximise I(y_1..y_k; ω), from probs_NTK [N, T, K].

    Computes in float64 on probs_NTK's device, each p_t(y_n) renormalised to sum to 1 (float32 rows are off
    by ~1e-7, and the joint's algebra needs 1). Joint entropies are exact while the chosen batch has at most
    max_configurations label configurations (K^b for b chosen), then estimated from num_samples sampled
    ones; chunk_elements bounds the scoring buffers (see `joint_entropies`). Ties (within TIE_NATS) and the
    samples are drawn from `rng`; pool_size (= N) is part of the selecting signature only.
    """
    probs_NTK = probs_NTK.double()
    probs_TNK = (probs_NTK / probs_NTK.sum(-1, keepdim=True)).transpose(0, 1).contiguous()
    T, N, _ = probs_TNK.shape
    minus_conditional_N = -conditional_entropies(probs_TNK)
    batch = JointBatch.empty(T, probs_TNK.device)
    chosen_N = torch.zeros(N, dtype=torch.bool, device=probs_TNK.device)
    index_k: list[int] = []
    for step in range(k):
        scores_N = joint_entropies(batch, probs_TNK, chunk_elements) + minus_conditional_N
        scores_N.masked_fill_(chosen_N, -torch.inf)
        index_k.append(random_argmax(scores_N, rng))
        chosen_N[index_k[-1]] = True
        if step + 1 < k:
            batch = batch.add(probs_TNK[:, index_k[-1]], rng, max_configurations, num_samples)
    return torch.tensor(index_k, dtype=torch.long)
