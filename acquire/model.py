"""Classifiers: Gal et al. (2017)'s CNN, the model factories the loop builds any classifier with, and training.

Gal's network is split where MC dropout needs it: a deterministic convolutional `trunk`
(images -> features [N, 3872] for MNIST) and a stochastic `head` (features -> logits [N, K]) that
holds both dropout layers. Any other nn.Module mapping float images [N,C,H,W] in [0, 1] to logits [N,K]
works too, made by a `ModelFactory` (seed, device) -> nn.Module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from acquire.errors import UserError
from acquire.metrics import accuracy, balanced_accuracy
from acquire.seeding import seeded_cpu_rng


def to_float(images_NCHW: torch.Tensor) -> torch.Tensor:
    """uint8 images [N,C,H,W] -> a new float32 tensor in [0, 1] on the same device (the input is untouched)."""
    return images_NCHW.to(torch.float32) / 255.0


PRECISIONS = ("fp32", "bf16")
"""fp32: float32 throughout. bf16: training under torch.autocast(bfloat16), and MC-dropout scoring with bfloat16
weights, features and masks (bfloat16 GEMMs); softmax, probabilities and scores stay float32/float64."""


def check_precision(precision: str, device: torch.device | str) -> None:
    """Refuse (ValueError) a precision not in PRECISIONS, or bf16 on a device that cannot compute in bfloat16."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision != "bf16" or device.type == "meta":
        return
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    else:
        try:
            ones = torch.ones(2, 2, dtype=torch.bfloat16, device=device)
            supported = bool((ones @ ones == 2).all())
        except RuntimeError:
            supported = False
    if not supported:
        raise UserError(f"precision bf16 is not supported on {device} (no bfloat16 matrix products); use fp32")


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """torch.autocast to bfloat16 on the device's type for precision 'bf16'; a no-op context for 'fp32'.

    Its weight-cast cache is off: torch keeps a weight's first bfloat16 copy until the block ends, so a training
    loop inside one block would compute every forward pass with its initial weights, whatever the optimiser did.
    """
    if precision != "bf16":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)


def dropout_mask(shape: tuple[int, ...], p: float, generator: torch.Generator | None,
                 device: torch.device | str) -> torch.Tensor:
    """Inverted-dropout mask of `shape` on `device`: 0 with probability p, else 1/(1-p), drawn on the
    generator's own device (so a CPU generator serves a CUDA model and vice versa)."""
    draw_device = generator.device if generator is not None else device
    keep = torch.empty(shape, device=draw_device).bernoulli_(1.0 - p, generator=generator)
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
        self.to(memory_format=torch.channels_last)  # ~2x faster convolutions on CPU, and tensor-core friendly


    def trunk(self, x_NCHW: torch.Tensor) -> torch.Tensor:
        """Deterministic part: float images [N,C,S,S] -> features [N, feature_dim]."""
        h = F.relu(self.conv1(x_NCHW.contiguous(memory_format=torch.channels_last)))
        h = F.relu(self.conv2(h))
        return F.max_pool2d(h, self.pool_size).flatten(1)

    def head(self, features_ND: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Stochastic part: features [N,D] -> logits [N,K].

        masks: optional (mask_D, mask_H) inverted-dropout masks applied to every row (one sampled
        network); otherwise dropout is drawn per row in training mode and skipped in eval mode.
        """
        if masks is not None:
            features_ND = features_ND * masks[0]
        elif self.training:
            features_ND = features_ND * dropout_mask(features_ND.shape, self.conv_dropout, generator, features_ND.device)
        h = F.relu(self.fc1(features_ND))
        if masks is not None:
            h = h * masks[1]
        elif self.training:
            h = h * dropout_mask(h.shape, self.dense_dropout, generator, h.device)
        return self.fc2(h)

    def forward(self, x_NCHW: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.head(self.trunk(x_NCHW), generator=generator)


@dataclass
class TrainConfig:
    """How each round's fresh classifier is trained (defaults: the paper's protocol)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    dense_l2_c: float = 0.0  # Gal et al.'s code: loss += (c / n_train) * ||W_dense1||², they used c = 3.5

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.dense_l2_c < 0:
            raise UserError(f"need lr > 0, weight_decay >= 0 and dense_l2_c >= 0, got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}, dense_l2_c={self.dense_l2_c}")


ModelFactory = Callable[[int, torch.device], nn.Module]
"""(seed, device) -> a freshly initialised classifier on `device`: float images [N,C,H,W] in [0, 1] -> logits [N,K]."""

TrainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, TrainConfig, torch.Generator], nn.Module]
"""(model, uint8 images [N,C,H,W], labels [N], config, generator) -> the model, trained in place (train_classifier).
The loop calls it inside `autocast(precision, device)`: with precision bf16 its forward passes run in bfloat16."""


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


GAL_CODE_ARCHITECTURE = dict(kernel_size=3, pool_size=5, hidden=256)


def glorot_init(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every conv and linear layer of `model` in place as Keras does by default: weights
    U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (fans include the kernel area), biases 0. Drawn on the CPU
    from `seed` alone, whatever the model's device; returns the model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                weight = torch.rand(layer.weight.shape, generator=generator, dtype=torch.float32) * (2 * bound) - bound
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
    with seeded_cpu_rng(seed):
        model = GalCNN(num_classes=num_classes, image_size=height, in_channels=channels, **architecture)
    return model.to(device)


@contextmanager
def seeded_global_rng(seed: int, device: torch.device | str) -> Iterator[None]:
    """Inside the block torch's global RNG (the CPU's, and `device`'s if it is a GPU) is seeded by `seed`; after it,
    restored. Makes models that draw from it (nn.Dropout, default initialisations) reproducible."""
    device = torch.device(device)
    gpus = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=gpus):
        torch.default_generator.manual_seed(seed)
        for gpu in gpus:
            with torch.cuda.device(gpu):
                torch.cuda.manual_seed(seed)
        yield


def make_model(factory: ModelFactory, seed: int, device: torch.device | str) -> nn.Module:
    """factory(seed, device), called with torch's global RNG seeded by `seed` (see seeded_global_rng), so that a
    factory that only constructs layers gives weights that depend on `seed` alone."""
    device = torch.device(device)
    with seeded_global_rng(seed, device):
        model = factory(seed, device)
    if not isinstance(model, nn.Module):
        raise UserError(f"the model factory returned a {type(model).__name__}, not a torch.nn.Module; it must be "
                         "a function (seed, device) -> nn.Module")
    return model


@torch.no_grad()
def check_model(model: nn.Module, example_NCHW: torch.Tensor, image_shape: tuple[int, int, int]) -> int:
    """The model's number of classes K, after checking that it takes images [C,H,W] = image_shape: the shape it
    declares (`image_shape` attribute), if any, must match, and on uint8 images example_NCHW [n,C,H,W] (on the run's
    device) its forward pass must give logits [n,K]."""
    declared = getattr(model, "image_shape", None)
    if declared is not None and tuple(declared) != tuple(image_shape):
        raise UserError(f"the data has images of shape [C,H,W] = {list(image_shape)}, but the model takes "
                         f"{list(declared)}; give data of the model's shape, or a model built for the data")
    model.eval()
    try:
        logits = model(to_float(example_NCHW))
    except Exception as error:
        raise UserError(f"the model cannot take images [C,H,W] = {list(image_shape)} on {example_NCHW.device} "
                         f"({type(error).__name__}: {error}); make the factory build it for this shape and put it on "
                         "the device it is given") from None
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != len(example_NCHW):
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise UserError(f"the model must map images [N,C,H,W] to logits [N,K]; for N = {len(example_NCHW)} it "
                         f"returned {got}")
    return logits.shape[1]


def check_trainable(model: nn.Module, config: TrainConfig) -> None:
    """Refuse a TrainConfig that `model` cannot be trained with by train_classifier (dense_l2_c needs GalCNN's fc1)."""
    if config.dense_l2_c and not isinstance(getattr(model, "fc1", None), nn.Linear):
        raise UserError(f"dense_l2_c={config.dense_l2_c} penalises the first dense layer `fc1` of Gal et al.'s CNN, "
                         f"which this {type(model).__name__} lacks; set dense_l2_c to 0 or pass a training function")


def train_classifier(model: nn.Module, images_NCHW: torch.Tensor, labels_N: torch.Tensor,
                     config: TrainConfig, generator: torch.Generator) -> nn.Module:
    """Train `model` in place with Adam on uint8 images [N,C,H,W] / labels [N] already on its device.

    Shuffling draws from `generator`, and so does a GalCNN's dropout, so a (seed, data) pair gives the same weights;
    other models' dropout draws from torch's global RNG (which the loop seeds per arm and round).
    """
    n = len(labels_N)
    if n == 0:
        raise UserError("cannot train on an empty training set")
    check_trainable(model, config)
    forward = partial(model, generator=generator) if isinstance(model, GalCNN) else model
    x = to_float(images_NCHW)
    dense_l2 = config.dense_l2_c / n
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator, device=generator.device).to(x.device)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            loss = F.cross_entropy(forward(x[batch]), labels_N[batch])
            if dense_l2:
                loss = loss + dense_l2 * model.fc1.weight.square().sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()
    return model


def default_chunk_size(device: torch.device | str) -> int:
    """Images per inference chunk: small on CPU (activations stay in cache, no large allocations), large on GPU."""
    return 8192 if torch.device(device).type == "cuda" else 256


@torch.no_grad()
def map_in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], images_NCHW: torch.Tensor,
                  chunk_size: int | None = None) -> torch.Tensor:
    """fn applied to consecutive chunks of images [N,C,H,W] (no grad), its outputs concatenated on dim 0."""
    chunk_size = chunk_size or default_chunk_size(images_NCHW.device)
    starts = range(0, max(1, len(images_NCHW)), chunk_size)  # an empty input still gives fn's empty output
    return torch.cat([fn(images_NCHW[start:start + chunk_size]) for start in starts])


def predict(model: nn.Module, images_NCHW: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Deterministic (dropout off) predicted labels [N] for uint8 images [N,C,H,W]."""
    model.eval()
    return map_in_chunks(lambda chunk: model(to_float(chunk)).argmax(1), images_NCHW, batch_size)


def evaluate(model: nn.Module, images_NCHW: torch.Tensor, labels_N: torch.Tensor) -> dict[str, float]:
    """{"accuracy", "balanced_accuracy"} of the model's deterministic predictions on uint8 images [N,C,H,W]
    with labels [N] (on the model's device)."""
    predicted_N = predict(model, images_NCHW)
    return {"accuracy": accuracy(predicted_N, labels_N), "balanced_accuracy": balanced_accuracy(predicted_N, labels_N)}
