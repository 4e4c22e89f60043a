"""Gal et al. (2017)'s CNN and the factories that build it: the paper's network, their published code's network, and
each with Keras's Glorot initialisation.

GalCNN is split where MC dropout needs it, as acquire.mc_dropout.TrunkHead describes: a deterministic convolutional
`trunk` (images -> features_ND) and a stochastic head that holds both dropout layers (`head`, and `sampled_heads`
for T sampled networks at once, their masks folded into the dense weights).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from acquire.errors import UserError
from acquire.seeding import seeded_global_rng
from acquire.precision import autocast_dtype


def dropout_mask(shape: tuple[int, ...], p: float, rng: torch.Generator | None,
                 device: torch.device | str) -> torch.Tensor:
    """Inverted-dropout mask of `shape` on `device`: 0 with probability p, else 1/(1-p), drawn on the
    rng's own device (so a CPU rng serves a CUDA model and vice versa)."""
    draw_device = rng.device if rng is not None else device
    keep = torch.empty(shape, device=draw_device).bernoulli_(1.0 - p, generator=rng)
    return keep.mul_(1.0 / (1.0 - p)).to(device)


class GalCNN(nn.Module):
    """conv 32@kxk, relu, conv 32@kxk, relu, maxpool p, dropout .25, dense h, relu, dropout .5, dense K.

    The paper's network has k = 4, p = 2, h = 128 (the defaults); its published Keras code k = 3, p = 5, h = 256.
    forward: float images [N,C,S,S] (MNIST: [N,1,28,28]) -> logits [N,K]; `image_shape` is (C,S,S).
    """

    def __init__(self, num_classes: int = 10, image_size: int = 28, in_channels: int = 1,
                 conv_dropout: float = 0.25, dense_dropout: float = 0.5, hidden: int = 128,
                 kernel_size: int = 4, pool_size: int = 2):
        super().__init__()
        smallest = 2 * (kernel_size - 1) + pool_size
        if image_size < smallest:
            raise UserError(f"this CNN (kernel {kernel_size}, pool {pool_size}) needs images of at least "
                            f"{smallest}x{smallest} pixels, got {image_size}x{image_size}")
        self.image_shape = (in_channels, image_size, image_size)
        self.pool_size = pool_size
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=kernel_size)
        self.conv2 = nn.Conv2d(32, 32, kernel_size=kernel_size)
        side = (image_size - 2 * (kernel_size - 1)) // pool_size
        self.feature_dim = 32 * side * side
        self.fc1 = nn.Linear(self.feature_dim, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.conv_dropout = conv_dropout
        self.dense_dropout = dense_dropout
        self.to(memory_format=torch.channels_last)  # faster convolutions on CPU, and tensor-core friendly

    def trunk(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        """Deterministic part: float images [N,C,S,S] -> features [N, feature_dim]."""
        h = F.relu(self.conv1(x_NCHW.contiguous(memory_format=torch.channels_last)))
        h = F.relu(self.conv2(h))
        return F.max_pool2d(h, self.pool_size).flatten(1)

    def head(self, features_ND: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None = None,
             rng: torch.Generator | None = None) -> torch.Tensor:
        """Stochastic part, one network: features [N,D] -> logits [N,K].

        masks: optional (mask_D, mask_H) inverted-dropout masks applied to every row (one sampled
        network); otherwise dropout is drawn per row from `rng` in training mode and skipped in eval mode.
        """
        if masks is not None:
            features_ND = features_ND * masks[0]
        elif self.training:
            features_ND = features_ND * dropout_mask(features_ND.shape, self.conv_dropout, rng, features_ND.device)
        h = F.relu(self.fc1(features_ND))
        if masks is not None:
            h = h * masks[1]
        elif self.training:
            h = h * dropout_mask(h.shape, self.dense_dropout, rng, h.device)
        return self.fc2(h)

    def head_dropout(self) -> list[tuple[tuple[int, ...], float]]:
        """(mask shape of one row, drop probability) of the head's two dropouts: features [D], hidden units [H]."""
        return [((self.fc1.in_features,), self.conv_dropout), ((self.fc1.out_features,), self.dense_dropout)]

    def sampled_heads(self, masks: Sequence[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """The head of T sampled networks: features [N,D] -> logits [N,T,K] (a transposed view).

        masks (mask_TD, mask_TH) shared by every row: each mask is folded into the next dense layer's weights
        (column block t of the first is (W1 ⊙ m_t)ᵀ), so the T first dense layers are one GEMM [N,D] x [D,T·H]. Under
        bfloat16 autocast the folded weights are rounded to bfloat16 once, here, and every GEMM is bfloat16.
        masks (mask_NTD, mask_NTH), each row its own T networks: applied to the features and hidden units.
        """
        mask_D, mask_H = masks
        if mask_D.dim() == 3:
            return lambda features_ND: self._per_row_heads(features_ND, mask_D, mask_H)
        dtype = autocast_dtype(self.fc1.weight.device)
        T, H = len(mask_D), self.fc1.out_features
        w1_DTH = (self.fc1.weight.unsqueeze(0) * mask_D.unsqueeze(1)).reshape(T * H, -1).t().contiguous().to(dtype)
        b1_TH = self.fc1.bias.repeat(T).to(dtype)
        w2_THK = (self.fc2.weight.unsqueeze(0) * mask_H.unsqueeze(1)).transpose(1, 2).contiguous().to(dtype)
        b2_K = self.fc2.bias.to(dtype)

        def heads(features_ND: torch.Tensor) -> torch.Tensor:
            hidden_NTH = torch.addmm(b1_TH, features_ND.to(dtype), w1_DTH).relu_()
            return torch.baddbmm(b2_K, hidden_NTH.view(len(features_ND), T, H).transpose(0, 1), w2_THK).transpose(0, 1)
        return heads

    def _per_row_heads(self, features_ND: torch.Tensor, mask_NTD: torch.Tensor, mask_NTH: torch.Tensor) -> torch.Tensor:
        """logits [N,T,K] of each row's own T networks, masks [N,T,D] and [N,T,H]."""
        hidden_NTH = F.relu(self.fc1(features_ND.unsqueeze(1) * mask_NTD))
        return self.fc2(hidden_NTH * mask_NTH.to(hidden_NTH.dtype))

    def forward(self, x_NCHW: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        return self.head(self.trunk(x_NCHW), rng=rng)


GAL_CODE_ARCHITECTURE = {"kernel_size": 3, "pool_size": 5, "hidden": 256}


def new_model(seed: int, device: torch.device | str, num_classes: int = 10,
              image_shape: tuple[int, int, int] = (1, 28, 28)) -> GalCNN:
    """A freshly initialised GalCNN as Gal et al.'s paper prints it (conv 4x4, maxpool 2, dense 128) for images
    [C,S,S], whose weights depend only on `seed`: drawn on the CPU (from the CPU RNG alone, restored afterwards;
    no CUDA RNG is touched), then moved to `device`."""
    return _seeded_gal_cnn(seed, device, num_classes, image_shape)


def new_gal_code_model(seed: int, device: torch.device | str, num_classes: int = 10,
                       image_shape: tuple[int, int, int] = (1, 28, 28)) -> GalCNN:
    """As new_model, but the network of Gal et al.'s published Keras code (Riashat/Deep-Bayesian-Active-Learning,
    MC_Dropout_Keras/Dropout_Bald_Q10_N1000_Paper.py): conv 3x3, maxpool 5, dense 256 (MNIST: 512 features
    instead of 3872). PyTorch's default initialisation, as new_model (Keras used Glorot-uniform)."""
    return _seeded_gal_cnn(seed, device, num_classes, image_shape, **GAL_CODE_ARCHITECTURE)


def new_glorot_model(seed: int, device: torch.device | str, num_classes: int = 10,
                     image_shape: tuple[int, int, int] = (1, 28, 28)) -> GalCNN:
    """As new_model, with Keras's initialisation (the one Gal et al.'s code ran with): Glorot-uniform weights,
    zero biases (glorot_init)."""
    return glorot_init(_seeded_gal_cnn(seed, device, num_classes, image_shape), seed)


def new_gal_code_glorot_model(seed: int, device: torch.device | str, num_classes: int = 10,
                              image_shape: tuple[int, int, int] = (1, 28, 28)) -> GalCNN:
    """Their code's network (new_gal_code_model) with Keras's initialisation (glorot_init): the closest this
    engine comes to the model their Keras file built."""
    return glorot_init(_seeded_gal_cnn(seed, device, num_classes, image_shape, **GAL_CODE_ARCHITECTURE), seed)


def glorot_init(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every conv and linear layer of `model` in place as Keras does by default: weights
    U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (fans include the kernel area), biases 0. Drawn on the CPU
    from `seed` alone, whatever the model's device; returns the model."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                weight = torch.rand(layer.weight.shape, generator=rng, dtype=torch.float32) * (2 * bound) - bound
                layer.weight.copy_(weight)
                if layer.bias is not None:
                    layer.bias.zero_()
    return model


def _seeded_gal_cnn(seed: int, device: torch.device | str, num_classes: int, image_shape: tuple[int, int, int],
                    **architecture) -> GalCNN:
    channels, height, width = image_shape
    if height != width:
        raise UserError(f"Gal et al.'s CNN takes square images, got [C,H,W] = {list(image_shape)}; crop or pad "
                        "them to a square, or pass a model factory built for this shape")
    with seeded_global_rng(seed, "cpu"):
        model = GalCNN(num_classes=num_classes, image_size=height, in_channels=channels, **architecture)
    return model.to(device)
