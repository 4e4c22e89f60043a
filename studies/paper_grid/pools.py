"""The paper grid's generated pools: per_class samples of each class from a trained GAN in gan_dir.

Generated pools are meant to be device- and thread-independent (ConditionalGenerator.sample: z from a CPU RNG, a
float64 forward pass), so that a run resumed on another machine draws the same pool bytes; the pool fingerprint in
config.json checks it on every resume.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from acquire.data import ImageSet
from acquire.files import mark_as_cache, write_tensors
from acquire.digests import image_set_digest
from acquire.seeding import derive_seed
from gans.base import ConditionalGenerator, balanced_samples
from gans.checkpoint import load_checkpoint
from gans.sources import check_source_matches, trained_checkpoint

# 6,000 per class = 60,000 generated candidates, as many as the real pool: random acquisition then takes
# real and generated images half and half, so any skew under BALD is the acquisition function's choice.
DEFAULT_PER_CLASS = 6000
POOL_CACHE = "pools"  # gan_dir/pools: generated pools, a local cache
SAMPLING = "ConditionalGenerator.sample: z [N,Z] from a CPU RNG in label order, float64 forward, chunks of 1024"
SPOT_CHECK = 1024  # images per chunk of sample(); a cached pool's first, last and two random chunks are re-sampled


def cache_key(family: str, weights_sha256: str, per_class: int, seed: int) -> dict:
    """What a cached pool must have been sampled with: the generator's weights and the sampling settings."""
    return {"family": family, "weights_sha256": weights_sha256, "per_class": per_class, "seed": seed,
            "sampling": SAMPLING}


def cached_pool(cache: Path, key: dict, generator: ConditionalGenerator, rng_seed: int, device) -> ImageSet | None:
    """The pool cached at `cache` if it was written for exactly `key`, its digest holds, and four of its chunks of
    SPOT_CHECK images (the first, the last, two chosen at random on each read) are what `generator` samples now;
    None otherwise (absent, damaged, edited or of other settings)."""
    try:
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        images = ImageSet(saved["images_NCHW"], saved["labels_N"])
        if saved["key"] != key or image_set_digest(images) != saved["sha256"]:
            return None
    except Exception:  # absent or damaged: it is only a cache
        return None
    chunks = -(-len(images) // SPOT_CHECK)
    checked = sorted({0, chunks - 1, *random.SystemRandom().sample(range(chunks), min(2, chunks))})
    rng = torch.Generator().manual_seed(rng_seed)
    for chunk in range(chunks):
        if chunk > checked[-1]:
            break
        part = images.subset(torch.arange(chunk * SPOT_CHECK, min((chunk + 1) * SPOT_CHECK, len(images))))
        if chunk not in checked:  # advance the RNG past this chunk's z, as sample() draws it
            torch.randn(len(part), generator.latent_dim, generator=rng)
        elif not torch.equal(generator.sample(part.labels_N.to(device), rng).cpu(), part.images_NCHW):
            return None
    return images.to(device)


def generated_source(family: str, gan_dir: Path, per_class: int, seed: int, device,
                     image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> ImageSet:
    """per_class samples of every class from the trained `family` generator: uint8 [K·per_class,C,H,W] on `device`,
    the same bytes on every CPU thread count (other devices: results/README.md; a resume checks).

    A generator whose image shape or classes differ from (image_shape, num_classes), the data's, is refused before
    anything is loaded. Sampling runs in float64, so the samples are cached in gan_dir/pools/ (git-ignored), bound to
    the weights' sha256 and the sampling settings and spot-checked when read back; a missing, damaged or edited
    cache file is sampled again.
    """
    path = trained_checkpoint(gan_dir, family)
    check_source_matches(path, image_shape, num_classes)
    generator, meta = load_checkpoint(path, family, device)
    key = cache_key(family, meta["weights_sha256"], per_class, seed)
    cache = Path(gan_dir) / POOL_CACHE / f"{family}-{meta['weights_sha256'][:16]}-{per_class}-seed{seed}.pt"
    rng_seed = derive_seed(seed, family, "pool")
    images = cached_pool(cache, key, generator, rng_seed, device)
    if images is not None:
        return images
    images = balanced_samples(generator, per_class, rng_seed, device)
    write_tensors(cache, {"images_NCHW": images.images_NCHW.cpu(), "labels_N": images.labels_N.cpu(),
                          "sha256": image_set_digest(images), "key": key})
    mark_as_cache(cache.parent, "generated pools, re-sampled when absent")
    return images
