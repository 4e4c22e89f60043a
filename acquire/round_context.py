"""What an acquisition function may know about a round beyond the MC-dropout probabilities.

A function registered with ``context=True`` receives a RoundContext for the N candidates it chooses among: their
labels (a generated candidate's is its conditioning label, so its class is known), which were generated, the class
distribution the arm's acquisitions should follow and what it holds so far, and, computed only when asked for, the
classifier's features and a reference judge's probabilities. Wrappers hand a subset of it to the function they wrap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from acquire.errors import UserError

QUOTA_TARGETS = ("uniform", "training_set")
"""Class distributions quotas follow: uniform, or the arm's training set's before the round (uniform when empty)."""


@dataclass
class RoundContext:
    """One round's context for N candidates (CPU tensors unless said).

    labels_N [N] int64: each candidate's label (generated: its conditioning label); is_generated_N [N] bool;
    target_K [K] float64: the class distribution the acquisitions follow; acquired_K [K] int64: the arm's training
    set by class before the round; gate_threshold: see acquire.label_gate. features() -> features_ND [N, D] (the
    input of the classifier's last linear layer), labelled_features() -> [M, D] (the same for the training set),
    judge_probs() -> [N, K]: computed on first call. notes: what a wrapper reports for the round's record.
    """

    labels_N: torch.Tensor
    is_generated_N: torch.Tensor
    target_K: torch.Tensor
    acquired_K: torch.Tensor
    features: Callable[[], torch.Tensor]
    labelled_features: Callable[[], torch.Tensor]
    judge_probs: Callable[[], torch.Tensor]
    gate_threshold: float = 0.5
    notes: dict = field(default_factory=dict)

    def subset(self, positions_M: torch.Tensor) -> RoundContext:
        """The context of the candidates at positions_M [M] (CPU int64) of these N; notes are shared."""
        def rows(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
            return lambda: (values := fn())[positions_M.to(values.device)]
        return RoundContext(self.labels_N[positions_M], self.is_generated_N[positions_M], self.target_K,
                            self.acquired_K, rows(self.features), self.labelled_features, rows(self.judge_probs),
                            self.gate_threshold, self.notes)


def target_distribution(name: str, training_labels_M: torch.Tensor, num_classes: int) -> torch.Tensor:
    """target_K [K] (float64 weights) for a QUOTA_TARGETS name, from the arm's training labels [M] before the round."""
    if name not in QUOTA_TARGETS:
        raise UserError(f"quota_target must be one of {', '.join(QUOTA_TARGETS)}, got {name!r}")
    counts_K = torch.bincount(training_labels_M.cpu().long(), minlength=num_classes).double()
    return counts_K if name == "training_set" and counts_K.sum() > 0 else torch.ones(num_classes, dtype=torch.float64)


def probe_context(N: int, num_classes: int, rng: torch.Generator) -> RoundContext:
    """A context of N made-up candidates (half generated, random features and judge) for probing a function
    before a run writes anything."""
    features_ND = torch.randn(N, 8, generator=rng)
    judge_NK = torch.rand(N, num_classes, generator=rng)
    return RoundContext(torch.randint(num_classes, (N,), generator=rng), torch.arange(N) % 2 == 0,
                        torch.ones(num_classes, dtype=torch.float64), torch.zeros(num_classes, dtype=torch.long),
                        lambda: features_ND, lambda: features_ND[:2], lambda: judge_NK / judge_NK.sum(1, keepdim=True))
