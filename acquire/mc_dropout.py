"""MC-dropout predictions [N, T, K] from T sampled networks ("consistent" dropout).

Each of the T samples is one network ω_t: a dropout mask drawn once per round and shared by every
candidate. `mc_probs` (all probabilities [N, T, K]) and `mc_scores` (streaming: a score function applied chunk by
chunk, memory O(N)) serve any model, both from `mc_chunks` (per chunk of B candidates, probabilities [B, T, K]):

* GalCNN (it exposes a trunk/head split): a mask on a layer's input folds into that layer's weights,
  (h ⊙ m_t) Wᵀ = h (W ⊙ m_t)ᵀ, so `fused_chunks` runs the convolutional trunk once per image and the first
  dense layer of all T networks as one matrix product [B, D] x [D, T·H].
* any other nn.Module with nn.Dropout layers: `draw_dropout_masks` fixes, per sample t, one mask per dropout
  layer of that layer's per-example input shape, and `generic_chunks` runs the model T times per chunk
  (in eval mode) with mask t applied to every candidate by forward hooks.

masking "per_image" instead gives every candidate its own T masks, as dropout left on at prediction time does
(Gal et al.'s Keras code): `per_image_chunks` runs the trunk once per image and the head once per (image,
sample). Both sample the same predictive distribution per candidate; they differ in how the candidates' Monte
Carlo errors are correlated (shared masks: similar images get similar errors; per-image masks: independent).

precision "bf16" computes the GEMMs (and the trunk's convolutions) in bfloat16 and the softmax in float32.
`naive_mc_dropout_probs` is the textbook version for GalCNN (T full forward passes); it exists for tests and the
benchmark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from acquire.errors import UserError
from acquire.model import GalCNN, autocast, default_chunk_size, dropout_mask, to_float


MASKINGS = ("shared", "per_image")  # T masks shared by every candidate, or each candidate's own T masks
PER_IMAGE_CHUNK_FLOATS = 2 ** 24       # per_image_chunks caps B so that its masked features [B, T, D] fit this


@dataclass(frozen=True)
class HeadMasks:
    """T sampled networks' inverted-dropout masks: features_TD [T, D] and hidden_TH [T, H]."""

    features_TD: torch.Tensor
    hidden_TH: torch.Tensor

    @property
    def num_samples(self) -> int:
        return self.features_TD.shape[0]


def draw_head_masks(model: GalCNN, num_samples: int, generator: torch.Generator | None = None) -> HeadMasks:
    """Draw T = num_samples dropout masks for the model's two dropout layers."""
    if num_samples <= 0:
        raise UserError(f"need at least one MC sample, got {num_samples}")
    device = model.fc1.weight.device
    return HeadMasks(
        features_TD=dropout_mask((num_samples, model.fc1.in_features), model.conv_dropout, generator, device),
        hidden_TH=dropout_mask((num_samples, model.fc1.out_features), model.dense_dropout, generator, device),
    )


@torch.no_grad()
def fused_chunks(model: GalCNN, images_NCHW: torch.Tensor, masks: HeadMasks, chunk_size: int | None = None,
                 precision: str = "fp32") -> Iterator[tuple[int, torch.Tensor]]:
    """(start, probs_BTK) for consecutive chunks of B uint8 images [B,1,28,28] from images_NCHW[start:] (N >= 1):
    the class probabilities [B, T, K] (float32, a transposed view) of the T masked networks.

    precision bf16: the trunk runs under bfloat16 autocast and the head's mask-folded weights are bfloat16 (folded
    in float32, then rounded), so every GEMM is bfloat16; the logits are softmaxed in float32.
    Memory is bounded by chunk_size: per chunk the trunk features [B, D] and hidden units [B, T·H].
    """
    if len(images_NCHW) == 0:
        raise UserError("no candidates to score: images_NCHW is empty")
    model.eval()
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    T, H = masks.num_samples, model.fc1.out_features
    # First dense layer of all T networks as one [D, T·H] weight: column block t is (W1 ⊙ m_t)ᵀ.
    w1_DTH = (model.fc1.weight.unsqueeze(0) * masks.features_TD.unsqueeze(1)).reshape(T * H, -1).t().contiguous()
    w1_DTH, b1_TH = w1_DTH.to(dtype), model.fc1.bias.repeat(T).to(dtype)
    # Second dense layer with the hidden mask folded in: [T, H, K].
    w2_THK = (model.fc2.weight.unsqueeze(0) * masks.hidden_TH.unsqueeze(1)).transpose(1, 2).contiguous().to(dtype)
    b2_K = model.fc2.bias.to(dtype)
    hidden = None
    for start in range(0, len(images_NCHW), chunk_size):
        with autocast(precision, images_NCHW.device):
            features_BD = model.trunk(to_float(images_NCHW[start:start + chunk_size]))
        B = features_BD.shape[0]
        if hidden is None or hidden.shape[0] != B:
            hidden = torch.empty(B, T * H, dtype=dtype, device=features_BD.device)
        torch.addmm(b1_TH, features_BD, w1_DTH, out=hidden)
        hidden.relu_()
        logits_TBK = torch.baddbmm(b2_K, hidden.view(B, T, H).transpose(0, 1), w2_THK)
        yield start, logits_TBK.float().softmax(-1).transpose(0, 1)


@torch.no_grad()
def per_image_chunks(model: GalCNN, images_NCHW: torch.Tensor, num_samples: int,
                     generator: torch.Generator | None = None, chunk_size: int | None = None,
                     precision: str = "fp32") -> Iterator[tuple[int, torch.Tensor]]:
    """(start, probs_BTK [B, T, K], float32) as fused_chunks, but every candidate draws its own T masks (from
    `generator`, chunk after chunk): the trunk once per image, then the head for each of its T samples.
    Memory per chunk: the masked features [B, T, D], with B capped at PER_IMAGE_CHUNK_FLOATS / (T·D)."""
    if len(images_NCHW) == 0:
        raise UserError("no candidates to score: images_NCHW is empty")
    if num_samples <= 0:
        raise UserError(f"need at least one MC sample, got {num_samples}")
    model.eval()
    device, dtype = images_NCHW.device, (torch.bfloat16 if precision == "bf16" else torch.float32)
    T, D, H = num_samples, model.fc1.in_features, model.fc1.out_features
    chunk_size = min(chunk_size or default_chunk_size(device), max(1, PER_IMAGE_CHUNK_FLOATS // (T * D)))
    w1, b1, w2, b2 = (p.to(dtype) for p in (model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias))
    for start in range(0, len(images_NCHW), chunk_size):
        with autocast(precision, device):
            features_BD = model.trunk(to_float(images_NCHW[start:start + chunk_size]))
        B = features_BD.shape[0]
        features_BTD = features_BD.float().unsqueeze(1) * dropout_mask((B, T, D), model.conv_dropout, generator, device)
        hidden_BTH = F.linear(features_BTD.to(dtype), w1, b1).relu_()
        hidden_BTH *= dropout_mask((B, T, H), model.dense_dropout, generator, device).to(dtype)
        yield start, F.linear(hidden_BTH, w2, b2).float().softmax(-1)


def mc_dropout_probs(model: GalCNN, images_NCHW: torch.Tensor, masks: HeadMasks, chunk_size: int | None = None,
                     precision: str = "fp32") -> torch.Tensor:
    """Class probabilities [N, T, K] (float32) of the T masked networks for uint8 images [N,1,28,28]
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
                           masks: HeadMasks | None = None, generator: torch.Generator | None = None,
                           chunk_size: int | None = None) -> torch.Tensor:
    """Probabilities [N, T, K] from T full forward passes in train-mode dropout.

    With `masks`, pass t uses mask t for every image (then it equals `mc_dropout_probs`);
    without, every image draws its own masks, as a plain `model.train()` loop does.
    """
    model.eval()
    K = model.fc2.out_features
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    probs_NTK = torch.empty(len(images_NCHW), num_samples, K, device=images_NCHW.device)
    model.train()
    try:
        for t in range(num_samples):
            sample_masks = None if masks is None else (masks.features_TD[t], masks.hidden_TH[t])
            for start in range(0, len(images_NCHW), chunk_size):
                x = to_float(images_NCHW[start:start + chunk_size])
                logits = model.head(model.trunk(x), masks=sample_masks, generator=generator)
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
    """The model's nn.Dropout layers in module order; other dropout kinds, or none at all, are a ValueError."""
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
                       generator: torch.Generator | None = None) -> DropoutMasks:
    """Draw T = num_samples inverted-dropout masks for each nn.Dropout layer, shaped like the layer's input for one
    image [C,H,W] (found by one eval-mode forward pass on a blank image); a layer called twice in one pass applies
    its mask both times."""
    if num_samples <= 0:
        raise UserError(f"need at least one MC sample, got {num_samples}")
    layers = dropout_layers(model)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
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
    return DropoutMasks(tuple(used), tuple(dropout_mask((num_samples, *shapes[layer]), layer.p, generator, device)
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
    """Refuse, with a ValueError, a model that MC dropout cannot sample with `masking` (a GalCNN always can; another
    model needs nn.Dropout layers only, each used at one input shape, and shared masks)."""
    if masking == "per_image" and not isinstance(model, GalCNN):
        raise UserError(f"per-image MC-dropout masks are implemented for acquire.model.GalCNN only, not "
                         f"{type(model).__name__}; use shared masks (the default) for other models")
    if not isinstance(model, GalCNN):
        draw_dropout_masks(model, 1, image_shape, torch.Generator().manual_seed(0))


def mc_chunks(model: nn.Module, images_NCHW: torch.Tensor, num_samples: int,
              generator: torch.Generator | None = None, chunk_size: int | None = None,
              precision: str = "fp32", masking: str = "shared") -> Iterator[tuple[int, torch.Tensor]]:
    """(start, probs_BTK [B, T, K]) chunk by chunk, of T = num_samples networks sampled by consistent MC dropout
    (masks drawn from `generator` before the first chunk) for uint8 images [N,C,H,W]: the fused scorer for a GalCNN,
    the generic one for other models. masking "per_image": each candidate's own T masks (GalCNN only)."""
    if masking not in MASKINGS:
        raise UserError(f"masking must be one of {', '.join(MASKINGS)}, got {masking!r}")
    if masking == "per_image":
        check_mc_dropout(model, tuple(images_NCHW.shape[1:]), masking)
        return per_image_chunks(model, images_NCHW, num_samples, generator, chunk_size, precision)
    if isinstance(model, GalCNN):
        return fused_chunks(model, images_NCHW, draw_head_masks(model, num_samples, generator), chunk_size, precision)
    masks = draw_dropout_masks(model, num_samples, tuple(images_NCHW.shape[1:]), generator)
    return generic_chunks(model, images_NCHW, masks, chunk_size, precision)


def mc_probs(model: nn.Module, images_NCHW: torch.Tensor, num_samples: int, generator: torch.Generator | None = None,
             chunk_size: int | None = None, precision: str = "fp32", masking: str = "shared") -> torch.Tensor:
    """Class probabilities [N, T, K] of T = num_samples MC-dropout samples (see mc_chunks)."""
    return assemble(mc_chunks(model, images_NCHW, num_samples, generator, chunk_size, precision, masking),
                    len(images_NCHW))


@torch.no_grad()
def mc_scores(model: nn.Module, images_NCHW: torch.Tensor, num_samples: int,
              score_fn: Callable[[torch.Tensor], torch.Tensor], generator: torch.Generator | None = None,
              chunk_size: int | None = None, precision: str = "fp32", masking: str = "shared") -> torch.Tensor:
    """Streaming scores [N] (float64, on the images' device): score_fn(probs_BTK) -> scores [B] applied to each
    chunk's contiguous probabilities [B, T, K] (see mc_chunks), so memory holds N scores, never [N, T, K]."""
    scores_N = torch.empty(len(images_NCHW), dtype=torch.float64, device=images_NCHW.device)
    for start, probs_BTK in mc_chunks(model, images_NCHW, num_samples, generator, chunk_size, precision, masking):
        scores_N[start:start + len(probs_BTK)] = score_fn(probs_BTK.contiguous())
    return scores_N
