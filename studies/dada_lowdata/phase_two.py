"""DADA phase II, "classification training" (Zhang et al., sec. 3.3, eqs. 5-7; Algorithm 1, lines 9-12).

The augmenter G is frozen and only serves data; the 2k-way classifier C (`gans.dada.DadaDiscriminator`, logits
[N, 2k]: real classes 0..k-1, then fake classes k..2k-1) is trained on real and generated samples with

  L_C^II = L_data + L_gen                                                              (5)
  L_data = -E_{(x,y) ~ data} log[p(y | x) + p(k + y | x)]                               (6)
  L_gen  = -E_{(x,y) ~ G}    log[p(k + y | x) + p(y | x)]                               (7)

with p the softmax over all 2k logits: a sample of class y counts as class y whether C calls it real or fake,
so both terms have the same form and the real/fake distinction no longer matters. (Eq. 7 indexes generated
samples by their fake label k + y, hence its p(y - k | x); here labels are always the class 0..k-1.) A class
probability p_real(y|x) + p_fake(y|x) is a softmax over k "folded" logits logsumexp(l_y, l_{k+y}), so each
term is a cross-entropy on those. Predictions are the argmax of the same class probability.

Per step (Algorithm 1, line 10) one batch of real images and one equally large batch of generated ones enter
eqs. 6 and 7. The generated images are drawn once, before training, from the frozen G: `generated_per_real`
per real image with the real images' labels (sec. 4: the augmented set is 10x the real one for 9 per real).
Traditional augmentation (acquire.augment), when on, transforms the real images only, afresh every step
(DADA_augmented, sec. 4). Without G only L_data is trained: the same network and rule as a plain classifier.

Devices: C's device is the run's; the images are moved there once. The `rng` (a torch.Generator) may live on
another device (the runner's is on the CPU, so a run draws the same batches on any device; G's sample() wants a
CPU one): every draw from it is made on its own device and moved to C's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from acquire.errors import UserError
from acquire.augment import AugmentConfig, random_augment
from acquire.data import ImageSet
from acquire.inference import map_in_chunks
from acquire.precision import autocast
from gans.dada import (INIT_BATCH, OUTPUT_INIT_STD, DadaConfig, DadaDiscriminator, data_dependent_init,
                       weight_normed_layers)
from gans.base import ConditionalGenerator
from gans.training import batch_indices, seeded_weights, train_images_to_float

BACKGROUND = -1.0   # the background value of images in the GAN range [-1, 1] (augmentation fills with it)
LOG_EVERY = 25      # steps between progress-bar loss updates


@dataclass
class PhaseTwoConfig:
    """Phase-II training budget. `augment`: traditional augmentation of the real images (None = off)."""

    steps: int = 500
    batch_size: int = 32               # real images per step, and as many generated ones when G is given
    lr: float = 1e-3                   # Adam
    generated_per_real: int = 9        # size of the generated set, per real image
    augment: AugmentConfig | None = None

    def __post_init__(self):
        for name in ("steps", "batch_size", "generated_per_real"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise UserError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise UserError(f"lr must be > 0, got {self.lr}")


# ----------------------------------------------------------------------------------------- losses

def folded_logits(logits_N2K: torch.Tensor) -> torch.Tensor:
    """2k logits [N, 2k] -> k logits [N, k] whose softmax is p_real(y|x) + p_fake(y|x): logsumexp(l_y, l_{k+y})."""
    n, two_k = logits_N2K.shape
    return torch.logsumexp(logits_N2K.view(n, 2, two_k // 2), dim=1)


def class_loss(logits_N2K: torch.Tensor, labels_N: torch.Tensor) -> torch.Tensor:
    """Eq. 6 (or 7) on one batch: mean over samples of -log[p(y|x) + p(k+y|x)]; logits [N, 2k], labels [N] in 0..k-1."""
    return F.cross_entropy(folded_logits(logits_N2K), labels_N)


def phase_two_loss(logits_real_N2K: torch.Tensor, labels_real_N: torch.Tensor,
                   logits_gen_M2K: torch.Tensor, labels_gen_M: torch.Tensor) -> torch.Tensor:
    """Eq. 5: L_data (real logits [N, 2k], labels [N]) + L_gen (generated logits [M, 2k], labels [M]), labels 0..k-1."""
    return class_loss(logits_real_N2K, labels_real_N) + class_loss(logits_gen_M2K, labels_gen_M)


# ----------------------------------------------------------------------------------------- classifier

def new_classifier(config: DadaConfig, images: ImageSet, rng: torch.Generator, device) -> DadaDiscriminator:
    """An untrained C on `device`: weights drawn from `rng`, then data-dependently initialised (as in phase I)
    on up to INIT_BATCH of the real uint8 `images`."""
    with seeded_weights(rng):
        classifier = DadaDiscriminator(config)
    classifier = classifier.to(device, memory_format=torch.channels_last)
    real_NCHW, _ = train_images_to_float(images, device)
    index_B = torch.randperm(len(real_NCHW), generator=rng, device=rng.device)[:INIT_BATCH]
    data_dependent_init(weight_normed_layers(classifier), lambda: classifier(real_NCHW[index_B.to(device)], rng),
                        OUTPUT_INIT_STD)
    return classifier


def predict(classifier: DadaDiscriminator, images_NCHW: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Predicted classes [N] (argmax of p_real + p_fake) for uint8 images [N,C,H,W]; C is left in eval mode."""
    classifier.eval()
    return map_in_chunks(lambda chunk: folded_logits(classifier(chunk.float().div(127.5).sub(1))).argmax(1),
                         images_NCHW, batch_size)


# ----------------------------------------------------------------------------------------- training

def generate_set(augmenter: ConditionalGenerator, labels_N: torch.Tensor, per_real: int,
                 rng: torch.Generator) -> ImageSet:
    """`per_real` samples of the frozen augmenter for each real label [N]: uint8 images [per_real * N,C,H,W]."""
    labels_M = labels_N.repeat(per_real)
    return ImageSet(augmenter.sample(labels_M, rng), labels_M.to(next(augmenter.parameters()).device))


def train_phase_two(classifier: DadaDiscriminator, real: ImageSet, augmenter: ConditionalGenerator | None,
                    config: PhaseTwoConfig, rng: torch.Generator, progress: bool = True,
                    precision: str = "fp32") -> DadaDiscriminator:
    """Train `classifier` in place on real uint8 images (eq. 6) and, when `augmenter` is given, on its samples
    (eq. 7); returns it in eval mode. All randomness (generated set, batches, augmentation, C's input noise) comes
    from `rng`. Each step (after augmentation) runs under autocast(precision) (acquire.precision.PRECISIONS)."""
    device = next(classifier.parameters()).device
    real_NCHW, real_labels_N = train_images_to_float(real, device)
    steps_real = batch_indices(len(real_labels_N), config.batch_size, config.steps, rng)
    if augmenter is not None:
        gen_NCHW, gen_labels_M = train_images_to_float(
            generate_set(augmenter, real_labels_N, config.generated_per_real, rng), device)
        steps_gen = batch_indices(len(gen_labels_M), config.batch_size, config.steps, rng)
    optimiser = torch.optim.Adam(classifier.parameters(), lr=config.lr)
    classifier.train()
    bar = tqdm(range(config.steps), desc="DADA phase II", unit="step", disable=not progress)
    for step in bar:
        index_B = next(steps_real).to(device)
        x_BCHW, labels_B = real_NCHW[index_B], real_labels_N[index_B]
        if config.augment is not None:
            x_BCHW = random_augment(x_BCHW, config.augment, rng, fill=BACKGROUND)
        with autocast(precision, device):
            if augmenter is None:
                loss = class_loss(classifier(x_BCHW, rng), labels_B)
            else:
                index_M = next(steps_gen).to(device)
                logits = classifier(torch.cat([x_BCHW, gen_NCHW[index_M]]), rng)
                loss = phase_two_loss(logits[:len(labels_B)], labels_B, logits[len(labels_B):], gen_labels_M[index_M])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if progress and step % LOG_EVERY == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return classifier.eval()
