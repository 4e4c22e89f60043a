"""The label-fidelity gate: generated candidates whose conditioning label two models both contradict are dropped.

A conditional generator's sample can look like another class than the one it was asked for; acquired, it teaches
the classifier a wrong label, and uncertainty-based acquisition seeks exactly such ambiguous samples out. The gate
asks two models: the current classifier (its MC-mean prediction) and a reference judge trained on real labelled
images. A generated candidate is dropped only when both contradict its label, so one model's error alone (the
classifier knows little in early rounds) never removes a good sample. Real candidates are never gated.
"""

from __future__ import annotations

import torch

from acquire.errors import UserError


def label_gate(conditioning_labels_N: torch.Tensor, is_generated_N: torch.Tensor,
               classifier_probs_NK: torch.Tensor, judge_probs_NK: torch.Tensor,
               threshold: float = 0.5) -> torch.Tensor:
    """Which candidates stay in the pool: keep_N [N] (bool).

    conditioning_labels_N [N]: the label each generated candidate was generated for (any value, e.g. -1, for real
    ones); is_generated_N [N] (bool); classifier_probs_NK [N, K]: the classifier's MC-mean probabilities
    mean_t probs_NTK; judge_probs_NK [N, K]: the judge's probabilities. A model contradicts a label when its
    probability of that label is below `threshold`; a generated candidate is dropped when both models do.

    The default 0.5 is the one threshold that needs no K and no calibration study: at p(label) >= 0.5 no other class
    can be more probable, so a model that still predicts the label is never counted as contradicting it, while
    below 0.5 the model gives the label worse than even odds. A lower threshold gates only confident contradictions.
    """
    N = len(is_generated_N)
    if not 0.0 < threshold <= 1.0:
        raise UserError(f"the label-gate threshold must lie in (0, 1], got {threshold!r}")
    if is_generated_N.shape != (N,) or is_generated_N.dtype != torch.bool:
        raise UserError(f"is_generated must be one bool per candidate [N], got {tuple(is_generated_N.shape)} of "
                        f"{is_generated_N.dtype}")
    for name, probs_NK in (("classifier", classifier_probs_NK), ("judge", judge_probs_NK)):
        if probs_NK.dim() != 2 or len(probs_NK) != N:
            raise UserError(f"the {name}'s probabilities must be [N, K] with N = {N} candidates, got "
                            f"{tuple(probs_NK.shape)}")
    K = classifier_probs_NK.shape[1]
    if judge_probs_NK.shape[1] != K:
        raise UserError(f"the judge has {judge_probs_NK.shape[1]} classes and the classifier {K}; train the judge "
                        "on the same classes")
    device = classifier_probs_NK.device
    is_generated_N = is_generated_N.to(device)
    labels_N = torch.as_tensor(conditioning_labels_N).long().to(device)
    generated_labels = labels_N[is_generated_N]
    if len(generated_labels) and (int(generated_labels.min()) < 0 or int(generated_labels.max()) >= K):
        raise UserError(f"generated candidates' conditioning labels must lie in 0..{K - 1}, got "
                        f"{int(generated_labels.min())}..{int(generated_labels.max())}")
    label_N1 = torch.where(is_generated_N, labels_N, 0).unsqueeze(1)
    classifier_contradicts_N = classifier_probs_NK.gather(1, label_N1).squeeze(1) < threshold
    judge_contradicts_N = judge_probs_NK.to(device).gather(1, label_N1).squeeze(1) < threshold
    return ~(is_generated_N & classifier_contradicts_N & judge_contradicts_N)


def gated_share_by_class(keep_N: torch.Tensor, labels_N: torch.Tensor, is_generated_N: torch.Tensor,
                         num_classes: int) -> torch.Tensor:
    """share_K [K] (float64): of the generated candidates labelled c, the share that the gate dropped; NaN for a
    class with no generated candidate (nothing to gate)."""
    generated_N = is_generated_N.bool()
    labels_G = torch.as_tensor(labels_N).long()[generated_N]
    if len(labels_G) and (int(labels_G.min()) < 0 or int(labels_G.max()) >= num_classes):
        raise UserError(f"generated candidates' labels must lie in 0..{num_classes - 1}, got "
                        f"{int(labels_G.min())}..{int(labels_G.max())}")
    dropped_G = (~keep_N.bool()[generated_N]).double()
    total_K = torch.bincount(labels_G, minlength=num_classes).double()
    dropped_K = torch.bincount(labels_G, weights=dropped_G, minlength=num_classes)
    return dropped_K / total_K
