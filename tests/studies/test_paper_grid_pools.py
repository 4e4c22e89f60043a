"""The paper grid's generated pools: seeded, class-balanced, uint8, cached in gan_dir/pools bound to the weights and
the sampling settings; a GAN of another shape or class count is refused before any sampling."""

import pytest
import torch

from acquire.errors import UserError
from acquire.files import write_tensors
from acquire.digests import image_set_digest
from gans.base import ConditionalGenerator
from studies.paper_grid import pools
from studies.paper_grid.pools import generated_source
from tests.gans.test_gan_sources import save_small_gan


def test_generated_source_is_seeded_balanced_and_uint8(tmp_path):
    save_small_gan(tmp_path)
    a, b = (generated_source("small_dcgan", tmp_path, 3, seed, "cpu") for seed in (0, 0))
    c = generated_source("small_dcgan", tmp_path, 3, 1, "cpu")
    assert a.images_NCHW.dtype == torch.uint8 and torch.bincount(a.labels_N).tolist() == [3] * 10
    assert torch.equal(a.images_NCHW, b.images_NCHW) and not torch.equal(a.images_NCHW, c.images_NCHW)


def test_generated_pools_are_cached_locally_and_a_damaged_cache_is_sampled_again(tmp_path, monkeypatch):
    gan_dir = save_small_gan(tmp_path)
    first = generated_source("small_dcgan", gan_dir, 600, 0, "cpu")  # 6,000 images: 6 chunks of sample()
    cached = list((gan_dir / pools.POOL_CACHE).glob("*.pt"))
    assert len(cached) == 1 and (gan_dir / pools.POOL_CACHE / ".gitignore").read_text().strip().endswith("*")
    sampled = []
    original = ConditionalGenerator.sample
    monkeypatch.setattr(ConditionalGenerator, "sample", lambda self, labels, rng=None: sampled.append(len(labels))
                        or original(self, labels, rng))
    again = generated_source("small_dcgan", gan_dir, 600, 0, "cpu")
    assert torch.equal(again.images_NCHW, first.images_NCHW) and torch.equal(again.labels_N, first.labels_N)
    assert 2 <= len(sampled) <= 4 and sampled[0] == pools.SPOT_CHECK and sampled[-1] == 6000 - 5 * pools.SPOT_CHECK
    cached[0].write_bytes(b"damaged")
    sampled.clear()
    resampled = generated_source("small_dcgan", gan_dir, 600, 0, "cpu")
    assert torch.equal(resampled.images_NCHW, first.images_NCHW) and sampled == [6000]


def no_sampling(*args, **kwargs):
    raise AssertionError("must not sample")


@pytest.mark.parametrize("position", [0, -1])
def test_an_edited_cache_with_a_recomputed_digest_is_sampled_again(tmp_path, position):
    gan_dir = save_small_gan(tmp_path)
    first = generated_source("small_dcgan", gan_dir, 150, 0, "cpu")  # 1,500 images: two chunks
    (cache,) = (gan_dir / pools.POOL_CACHE).glob("*.pt")
    saved = torch.load(cache, weights_only=True)
    saved["images_NCHW"][position] = 255 - saved["images_NCHW"][position]
    saved["sha256"] = image_set_digest(pools.ImageSet(saved["images_NCHW"], saved["labels_N"]))
    write_tensors(cache, saved)
    assert torch.equal(generated_source("small_dcgan", gan_dir, 150, 0, "cpu").images_NCHW, first.images_NCHW)


def test_a_cache_of_other_settings_renamed_into_place_is_not_used(tmp_path):
    gan_dir = save_small_gan(tmp_path)
    other = generated_source("small_dcgan", gan_dir, 5, 1, "cpu")
    (cache,) = (gan_dir / pools.POOL_CACHE).glob("*.pt")
    cache.rename(cache.with_name(cache.name.replace("seed1", "seed0")))
    wanted = generated_source("small_dcgan", gan_dir, 5, 0, "cpu")
    assert not torch.equal(wanted.images_NCHW, other.images_NCHW)


def test_a_generator_of_other_classes_is_refused_before_sampling(tmp_path, monkeypatch):
    gan_dir = save_small_gan(tmp_path)
    monkeypatch.setattr(ConditionalGenerator, "sample", no_sampling)
    with pytest.raises(UserError, match="images of 10 classes, but the data has 1x28x28 images of 4 classes"):
        generated_source("small_dcgan", gan_dir, 5, 0, "cpu", num_classes=4)
    assert not (gan_dir / pools.POOL_CACHE).exists()
