"""MC-dropout predictions [N, T, K] from T sampled networks ("consistent" dropout).

Each of the T samples is one network ω_t: a dropout mask drawn once per round and shared by every
candidate. `mc_probs` (all probabilities [N, T, K]) and `mc_scores` (streaming: a score function applied chunk by
chunk, memory O(N)) serve any model, both from `mc_chunks` (per chunk of B candidates, probabilities [B, T, K]):

* a model that exposes its trunk and its dropout head (the `TrunkHead` protocol below; GalCNN is one) gets the
  fused scorer, `fused_chunks`: the trunk runs once per image and the head once for all T networks;
* any other nn.Module with nn.Dropout layers: `draw_dropout_masks` fixes, per sample t, one mask per dropout
  layer of that layer's per-example input shape, and `generic_chunks` runs the model T times per chunk
  (in eval mode) with mask t applied to every candidate by forward hooks.

The TrunkHead protocol (structural: no base class to inherit), for float images [N,C,H,W] in [0, 1]:

* ``trunk(images_NCHW) -> features_ND``: the deterministic part (no dropout), run once per image;
* ``head_dropout() -> [(shape, p), ...]``: the head's dropouts in the order it applies them, each with the mask
  shape of one row of its input (e.g. (D,)) and its drop probability;
* ``sampled_heads(masks) -> fn``: the head of the T networks that `masks` (one per head dropout, in that order)
  define, as a function features_ND -> logits_NTK. Each mask is [T, *shape] (shared by every row) or
  [N, T, *shape] (each row its own T networks, masking "per_image"); it multiplies the dropout's input with a T
  axis after the row axis, e.g. ``features_ND.unsqueeze(1) * masks[0]``.

In eval mode, ``model(x)`` must equal the head applied to ``trunk(x)`` with dropout off. GalCNN folds each shared
mask into the next dense layer's weights, (h ⊙ m_t) Wᵀ = h (W ⊙ m_t)ᵀ, so its T first dense layers are one matrix
product [B, D] x [D, T·H].

masking "per_image" instead gives every candidate its own T masks, as dropout left on at prediction time does
(Gal et al.'s Keras code; TrunkHead models only): `per_image_chunks` runs the trunk once per image and the head once
per (image, sample). Both sample the same predictive distribution per candidate; they differ in how the candidates'
Monte Carlo errors are correlated (shared masks: similar images get similar errors; per-image masks: independent).

precision "bf16" computes the GEMMs (and the trunk's convolutions) in bfloat16 and the softmax in float32.
`naive_mc_dropout_probs` is the textbook version for GalCNN (T full forward passes); it exists for tests and the
benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from acquire.errors import UserError
from acquire.inference import default_chunk_size, to_float
from acquire.networks import GalCNN, dropout_mask
from acquire.precision import autocast
from acquire.validate import check_choice, check_positive_int

MASKINGS = ("shared", "per_image")  # T masks shared by every candidate, or each candidate's own T masks
PER_IMAGE_CHUNK_FLOATS = 2 ** 24       # per_image_chunks caps B so that its largest masked input [B, T, X] fits this


@runtime_checkable
class TrunkHead(Protocol):
    """A model with a deterministic trunk and a dropout head (see the module docstring); GalCNN is one."""

    def trunk(self, images_NCHW: torch.Tensor) -> torch.Tensor: ...

    def head_dropout(self) -> Sequence[tuple[tuple[int, ...], float]]: ...

    def sampled_heads(self, masks: Sequence[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]: ...


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def draw_head_masks(model: TrunkHead, num_samples: int, rng: torch.Generator | None = None,
                    rows: int | None = None) -> tuple[torch.Tensor, ...]:
    """Inverted-dropout masks of T = num_samples networks, one per head dropout (in its order): [T, *shape], or
    [rows, T, *shape] for each of `rows` candidates' own T networks; drawn from `rng`, on the model's device."""
    check_positive_int("the number of MC samples", num_samples)
    dropouts = list(model.head_dropout())
    if not dropouts:
        raise UserError(f"the {type(model).__name__}'s head_dropout() names no dropout, so its MC samples would all "
                        "be one network; give its head dropout layers")
    lead = (num_samples,) if rows is None else (rows, num_samples)
    return tuple(dropout_mask((*lead, *shape), p, rng, model_device(model)) for shape, p in dropouts)


@torch.no_grad()
def fused_chunks(model: TrunkHead, images_NCHW: torch.Tensor, masks: Sequence[torch.Tensor],
                 chunk_size: int | None = None, precision: str = "fp32") -> Iterator[tuple[int, torch.Tensor]]:
    """(start, probs_BTK) for consecutive chunks of B uint8 images [B,C,H,W] from images_NCHW[start:] (N >= 1):
    the class probabilities [B, T, K] (float32) of the T networks that `masks` [T, *shape] define.

    The trunk runs once per image, the T heads once per chunk (model.sampled_heads), both under autocast(precision);
    the logits are softmaxed in float32. Memory is bounded by chunk_size.
    """
    if len(images_NCHW) == 0:
        raise UserError("no candidates to score: images_NCHW is empty")
    model.eval()
    device = images_NCHW.device
    chunk_size = chunk_size or default_chunk_size(device)
    with autocast(precision, device):
        heads = model.sampled_heads(masks)
    for start in range(0, len(images_NCHW), chunk_size):
        with autocast(precision, device):
            logits_BTK = heads(model.trunk(to_float(images_NCHW[start:start + chunk_size])))
        yield start, logits_BTK.float().softmax(-1)


@torch.no_grad()
def per_image_chunks(model: TrunkHead, images_NCHW: torch.Tensor, num_samples: int,
                     rng: torch.Generator | None = None, chunk_size: int | None = None,
                     precision: str = "fp32") -> Iterator[tuple[int, torch.Tensor]]:
    """(start, probs_BTK [B, T, K], float32) as fused_chunks, but every candidate draws its own T masks (from
    `rng`, chunk after chunk): the trunk once per image, then the head for each of its T samples.
    Memory per chunk: the masked inputs [B, T, X], with B capped at PER_IMAGE_CHUNK_FLOATS / (T·X), X the largest
    head dropout's mask size."""
    if len(images_NCHW) == 0:
        raise UserError("no candidates to score: images_NCHW is empty")
    check_positive_int("the number of MC samples", num_samples)
    model.eval()
    device = images_NCHW.device
    largest = max((math.prod(shape) for shape, _ in model.head_dropout()), default=1)
    cap = max(1, PER_IMAGE_CHUNK_FLOATS // (num_samples * largest))
    chunk_size = min(chunk_size or default_chunk_size(device), cap)
    for start in range(0, len(images_NCHW), chunk_size):
        with autocast(precision, device):
            features_BD = model.trunk(to_float(images_NCHW[start:start + chunk_size]))
        masks = draw_head_masks(model, num_samples, rng, rows=len(features_BD))
        with autocast(precision, device):
            logits_BTK = model.sampled_heads(masks)(features_BD)
        yield start, logits_BTK.float().softmax(-1)


def mc_dropout_probs(model: TrunkHead, images_NCHW: torch.Tensor, masks: Sequence[torch.Tensor],
                     chunk_size: int | None = None, precision: str = "fp32") -> torch.Tensor:
    """Class probabilities [N, T, K] (float32) of the T masked networks for uint8 images [N,C,H,W]
    (fused_chunks assembled)."""
    return assemble(fused_chunks(model, images_NCHW, masks, chunk_size, precision), len(images_NCHW))


def assemble(chunks: Iterable[tuple[int, torch.Tensor]], num_candidates: int) -> torch.Tensor:
    """The chunks' probabilities (start, probs_BTK) written into one tensor [N, T, K], N = num_candidates."""
    probs_NTK = None
    for start, probs_BTK in chunks:
        if probs_NTK is None:
            probs_NTK = torch.empty(num_candidates, *probs_BTK.shape[1:], dtype=probs_BTK.dtype,
                                    device=probs_BTK.device)
        probs_NTK[start:start + len(probs_BTK)] = probs_BTK
    return probs_NTK


@torch.no_grad()
def naive_mc_dropout_probs(model: GalCNN, images_NCHW: torch.Tensor, num_samples: int,
                           masks: Sequence[torch.Tensor] | None = None, rng: torch.Generator | None = None,
                           chunk_size: int | None = None) -> torch.Tensor:
    """Probabilities [N, T, K] from T full forward passes in train-mode dropout.

    With `masks` (mask_TD, mask_TH), pass t uses mask t for every image (then it equals `mc_dropout_probs`);
    without, every image draws its own masks from `rng`, as a plain `model.train()` loop does.
    """
    K = model.fc2.out_features
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    probs_NTK = torch.empty(len(images_NCHW), num_samples, K, device=images_NCHW.device)
    model.train()
    try:
        for t in range(num_samples):
            sample_masks = None if masks is None else (masks[0][t], masks[1][t])
            for start in range(0, len(images_NCHW), chunk_size):
                x = to_float(images_NCHW[start:start + chunk_size])
                logits = model.head(model.trunk(x), masks=sample_masks, rng=rng)
                probs_NTK[start:start + len(x), t] = logits.softmax(-1)
    finally:
        model.eval()
    return probs_NTK


@dataclass(frozen=True)
class DropoutMasks:
    """T sampled networks of a generic model: per nn.Dropout layer (in module order) a mask [T, *input shape]."""

    layers: tuple[nn.Dropout, ...]
    masks: tuple[torch.Tensor, ...]

    @property
    def num_samples(self) -> int:
        return self.masks[0].shape[0]


def dropout_layers(model: nn.Module) -> list[nn.Dropout]:
    """The model's nn.Dropout layers in module order; other dropout kinds, or none at all, are a UserError."""
    other_kinds = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)
    other = [f"{name} ({type(m).__name__})" for name, m in model.named_modules() if isinstance(m, other_kinds)]
    if other:
        raise UserError(f"MC dropout handles nn.Dropout layers only, but the model has layer(s) {', '.join(other)}; "
                        "replace them by nn.Dropout")
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if not layers:
        raise UserError(f"the {type(model).__name__} has no nn.Dropout layer, so its MC samples would all be one "
                        "network; add nn.Dropout layers, or use only acquisition functions without MC (random)")
    return layers


@torch.no_grad()
def draw_dropout_masks(model: nn.Module, num_samples: int, image_shape: tuple[int, ...],
                       rng: torch.Generator | None = None) -> DropoutMasks:
    """Draw T = num_samples inverted-dropout masks for each nn.Dropout layer, shaped like the layer's input for one
    image [C,H,W] (found by one eval-mode forward pass on a blank image); a layer called twice in one pass applies
    its mask both times."""
    check_positive_int("the number of MC samples", num_samples)
    layers = dropout_layers(model)
    device = model_device(model)
    shapes: dict[nn.Dropout, tuple[int, ...]] = {}

    def record(layer, inputs, output):
        shape = tuple(inputs[0].shape[1:])
        if shapes.setdefault(layer, shape) != shape:
            raise UserError(f"an nn.Dropout layer is used at input shapes {list(shapes[layer])} and {list(shape)} in "
                            "one forward pass; give each use its own nn.Dropout")

    handles = [layer.register_forward_hook(record) for layer in layers]
    try:
        model.eval()
        model(torch.zeros(1, *image_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    used = [layer for layer in layers if layer in shapes]  # a layer the forward pass never calls needs no mask
    return DropoutMasks(tuple(used), tuple(dropout_mask((num_samples, *shapes[layer]), layer.p, rng, device)
                                           for layer in used))


@torch.no_grad()
def generic_chunks(model: nn.Module, images_NCHW: torch.Tensor, masks: DropoutMasks, chunk_size: int | None = None,
                   precision: str = "fp32") -> Iterator[tuple[int, torch.Tensor]]:
    """(start, probs_BTK) for consecutive chunks of B uint8 images [B,C,H,W] from images_NCHW[start:] (N >= 1), any
    model: the class probabilities [B, T, K] of the T masked networks.

    The model runs in eval mode; a forward hook makes each nn.Dropout layer multiply its input by mask t, the same
    for every image of every chunk. precision bf16: forward passes under bfloat16 autocast, softmax in float32.
    Memory is bounded by chunk_size (one forward pass of a chunk at a time).
    """
    if len(images_NCHW) == 0:
        raise UserError("no candidates to score: images_NCHW is empty")
    model.eval()
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    T = masks.num_samples
    sample = [0]

    def apply_mask(mask_TX: torch.Tensor):
        return lambda layer, inputs, output: inputs[0] * mask_TX[sample[0]]

    handles = [layer.register_forward_hook(apply_mask(mask)) for layer, mask in zip(masks.layers, masks.masks)]
    try:
        for start in range(0, len(images_NCHW), chunk_size):
            x = to_float(images_NCHW[start:start + chunk_size])
            probs_BTK = None
            for t in range(T):
                sample[0] = t
                with autocast(precision, x.device):
                    logits_BK = model(x)
                probs_BK = (logits_BK.float() if precision == "bf16" else logits_BK).softmax(-1)
                if probs_BTK is None:
                    probs_BTK = torch.empty(len(x), T, probs_BK.shape[1], dtype=probs_BK.dtype, device=probs_BK.device)
                probs_BTK[:, t] = probs_BK
            yield start, probs_BTK
    finally:
        for handle in handles:
            handle.remove()


def generic_mc_dropout_probs(model: nn.Module, images_NCHW: torch.Tensor, masks: DropoutMasks,
                             chunk_size: int | None = None, precision: str = "fp32") -> torch.Tensor:
    """Class probabilities [N, T, K] of the T masked networks for uint8 images [N,C,H,W] (generic_chunks
    assembled)."""
    return assemble(generic_chunks(model, images_NCHW, masks, chunk_size, precision), len(images_NCHW))


def check_mc_dropout(model: nn.Module, image_shape: tuple[int, ...], masking: str = "shared") -> None:
    """Refuse, with a UserError, a model that MC dropout cannot sample with `masking`: a TrunkHead model needs a head
    dropout; another model needs nn.Dropout layers only, each used at one input shape, and shared masks."""
    check_choice("masking", masking, MASKINGS)
    if isinstance(model, TrunkHead):
        draw_head_masks(model, 1, torch.Generator().manual_seed(0))
        return
    if masking == "per_image":
        raise UserError(f"per-image MC-dropout masks need a model that exposes its trunk and dropout head "
                        f"(acquire.mc_dropout.TrunkHead, as GalCNN does), not a {type(model).__name__}; use shared "
                        "masks (the default) for other models")
    draw_dropout_masks(model, 1, image_shape, torch.Generator().manual_seed(0))


def mc_chunks(model: nn.Module, images_NCHW: torch.Tensor, num_samples: int,
              rng: torch.Generator | None = None, chunk_size: int | None = None,
              precision: str = "fp32", masking: str = "shared") -> Iterator[tuple[int, torch.Tensor]]:
    """(start, probs_BTK [B, T, K]) chunk by chunk, of T = num_samples networks sampled by consistent MC dropout
    (masks drawn from `rng` before the first chunk) for uint8 images [N,C,H,W]: the fused scorer for a TrunkHead
    model (GalCNN), the generic one for other models. masking "per_image": each candidate's own T masks (TrunkHead
    models only)."""
    check_choice("masking", masking, MASKINGS)
    if not isinstance(model, TrunkHead):
        if masking == "per_image":
            check_mc_dropout(model, tuple(images_NCHW.shape[1:]), masking)  # refuses
        masks = draw_dropout_masks(model, num_samples, tuple(images_NCHW.shape[1:]), rng)
        return generic_chunks(model, images_NCHW, masks, chunk_size, precision)
    if masking == "per_image":
        return per_image_chunks(model, images_NCHW, num_samples, rng, chunk_size, precision)
    return fused_chunks(model, images_NCHW, draw_head_masks(model, num_samples, rng), chunk_size, precision)


def mc_probs(model: nn.Module, images_NCHW: torch.Tensor, num_samples: int, rng: torch.Generator | None = None,
             chunk_size: int | None = None, precision: str = "fp32", masking: str = "shared") -> torch.Tensor:
    """Class probabilities [N, T, K] of T = num_samples MC-dropout samples (see mc_chunks)."""
    return assemble(mc_chunks(model, images_NCHW, num_samples, rng, chunk_size, precision, masking),
                    len(images_NCHW))


@torch.no_grad()
def mc_scores(model: nn.Module, images_NCHW: torch.Tensor, num_samples: int,
              score_fn: Callable[[torch.Tensor], torch.Tensor], rng: torch.Generator | None = None,
              chunk_size: int | None = None, precision: str = "fp32", masking: str = "shared") -> torch.Tensor:
    """Streaming scores [N] (float64, on the images' device): score_fn(probs_BTK) -> scores [B] applied to each
    chunk's contiguous probabilities [B, T, K] (see mc_chunks), so memory holds N scores, never [N, T, K]."""
    scores_N = torch.empty(len(images_NCHW), dtype=torch.float64, device=images_NCHW.device)
    for start, probs_BTK in mc_chunks(model, images_NCHW, num_samples, rng, chunk_size, precision, masking):
        scores_N[start:start + len(probs_BTK)] = score_fn(probs_BTK.contiguous())
    return scores_N
