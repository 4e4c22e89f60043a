"""MC-dropout predictions [N, T, K] from T sampled networks ("consistent" dropout).

Each of the T samples is one network ω_t: a dropout mask drawn once per round and shared by every
candidate. A mask on a layer's input folds into that layer's weights, (h ⊙ m_t) Wᵀ = h (W ⊙ m_t)ᵀ,
so `mc_dropout_probs` runs the convolutional trunk once per image and the first dense layer of all T
networks as one matrix product [B, D] x [D, T·H]. `naive_mc_dropout_probs` is the textbook
version (T full forward passes); it exists for tests and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from acquire.model import GalCNN, default_chunk_size, dropout_mask, to_float


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
        raise ValueError(f"need at least one MC sample, got {num_samples}")
    device = model.fc1.weight.device
    return HeadMasks(
        features_TD=dropout_mask((num_samples, model.fc1.in_features), model.conv_dropout, generator, device),
        hidden_TH=dropout_mask((num_samples, model.fc1.out_features), model.dense_dropout, generator, device),
    )


@torch.no_grad()
def mc_dropout_probs(model: GalCNN, images_NCHW: torch.Tensor, masks: HeadMasks,
                     chunk_size: int | None = None) -> torch.Tensor:
    """Class probabilities [N, T, K] of the T masked networks for uint8 images [N,1,28,28].

    Memory is bounded by chunk_size: per chunk the trunk features [B, D] and hidden units [B, T·H].
    """
    model.eval()
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    T, H, K = masks.num_samples, model.fc1.out_features, model.fc2.out_features
    # First dense layer of all T networks as one [D, T·H] weight: column block t is (W1 ⊙ m_t)ᵀ.
    w1_DTH = (model.fc1.weight.unsqueeze(0) * masks.features_TD.unsqueeze(1)).reshape(T * H, -1).t().contiguous()
    b1_TH = model.fc1.bias.repeat(T)
    # Second dense layer with the hidden mask folded in: [T, H, K].
    w2_THK = (model.fc2.weight.unsqueeze(0) * masks.hidden_TH.unsqueeze(1)).transpose(1, 2).contiguous()
    probs_NTK = torch.empty(len(images_NCHW), T, K, device=images_NCHW.device)
    hidden = None
    for start in range(0, len(images_NCHW), chunk_size):
        features_BD = model.trunk(to_float(images_NCHW[start:start + chunk_size]))
        B = features_BD.shape[0]
        if hidden is None or hidden.shape[0] != B:
            hidden = torch.empty(B, T * H, device=features_BD.device)
        torch.addmm(b1_TH, features_BD, w1_DTH, out=hidden)
        hidden.relu_()
        logits_TBK = torch.baddbmm(model.fc2.bias, hidden.view(B, T, H).transpose(0, 1), w2_THK)
        probs_NTK[start:start + B] = logits_TBK.softmax(-1).transpose(0, 1)
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
