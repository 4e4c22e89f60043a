"""Classification metrics on label tensors."""

from __future__ import annotations

import torch


def accuracy(predicted_N: torch.Tensor, labels_N: torch.Tensor) -> float:
    """Share of predictions equal to the labels."""
    return (predicted_N == labels_N).double().mean().item()


def balanced_accuracy(predicted_N: torch.Tensor, labels_N: torch.Tensor) -> float:
    """Mean over the classes present in `labels_N` of each class's recall (as sklearn's balanced_accuracy_score)."""
    classes = labels_N.unique()
    hits = (predicted_N == labels_N).double()
    recalls = torch.stack([hits[labels_N == c].mean() for c in classes])
    return recalls.mean().item()
