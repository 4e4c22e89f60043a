"""Training a classifier: the paper's recipe (TrainConfig, train_classifier) and the accuracy it is judged by.

Any nn.Module mapping float images [N,C,H,W] in [0, 1] to logits [N,K] trains with train_classifier; a model whose
forward takes an `rng` keyword (GalCNN) draws its dropout from the training rng, others from torch's global RNG.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from acquire.errors import UserError
from acquire.inference import predict, to_float
from acquire.metrics import accuracy, balanced_accuracy
from acquire.validate import check_float, check_positive_int


@dataclass(frozen=True)
class TrainConfig:
    """How each round's fresh classifier is trained (defaults: the paper's protocol); checked and frozen when built."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    dense_l2_c: float = 0.0  # Gal et al.'s code: loss += (c / n_train) * ||W_dense1||², they used c = 3.5

    def __post_init__(self):
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_float("lr", self.lr, above=0)
        check_float("weight_decay", self.weight_decay, minimum=0)
        check_float("dense_l2_c", self.dense_l2_c, minimum=0)


TrainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, TrainConfig, torch.Generator], nn.Module]
"""(model, uint8 images [N,C,H,W], labels [N], config, rng) -> the model, trained in place (train_classifier).
The loop calls it inside `autocast(precision, device)`: with precision bf16 its forward passes run in bfloat16."""


def check_trainable(model: nn.Module, config: TrainConfig) -> None:
    """Refuse a TrainConfig that `model` cannot be trained with by train_classifier (dense_l2_c needs GalCNN's fc1)."""
    if config.dense_l2_c and not isinstance(getattr(model, "fc1", None), nn.Linear):
        raise UserError(f"dense_l2_c={config.dense_l2_c} penalises the first dense layer `fc1` of Gal et al.'s CNN, "
                        f"which this {type(model).__name__} lacks; set dense_l2_c to 0 or pass a training function")


def takes_rng(model: nn.Module) -> bool:
    """Whether the model's forward accepts an `rng` keyword (a torch.Generator its dropout draws from)."""
    try:
        return "rng" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def train_classifier(model: nn.Module, images_NCHW: torch.Tensor, labels_N: torch.Tensor,
                     config: TrainConfig, rng: torch.Generator,
                     augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> nn.Module:
    """Train `model` in place with Adam on uint8 images [N,C,H,W] / labels [N] already on its device.

    Shuffling draws from `rng`, and so does the dropout of a model whose forward takes `rng` (GalCNN), so a
    (seed, data) pair gives the same weights; other models' dropout draws from torch's global RNG (which the loop
    seeds per arm and round). augment(batch_BCHW float in [0, 1], rng) -> batch, if given, transforms every batch.
    """
    n = len(labels_N)
    if n == 0:
        raise UserError("cannot train on an empty training set")
    check_trainable(model, config)
    forward = partial(model, rng=rng) if takes_rng(model) else model
    x = to_float(images_NCHW)
    dense_l2 = config.dense_l2_c / n
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=rng, device=rng.device).to(x.device)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            x_batch = x[batch] if augment is None else augment(x[batch], rng)
            loss = F.cross_entropy(forward(x_batch), labels_N[batch])
            if dense_l2:
                loss = loss + dense_l2 * model.fc1.weight.square().sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()
    return model


def evaluate(model: nn.Module, images_NCHW: torch.Tensor, labels_N: torch.Tensor) -> dict[str, float]:
    """{"accuracy", "balanced_accuracy"} of the model's deterministic predictions on uint8 images [N,C,H,W]
    with labels [N] (on the model's device)."""
    predicted_N = predict(model, images_NCHW)
    return {"accuracy": accuracy(predicted_N, labels_N), "balanced_accuracy": balanced_accuracy(predicted_N, labels_N)}
