"""GAN sources: the untrained-GAN error gives a command that writes only that GAN's own files, with the settings of
a sidecar committed without its weights; generated pools are seeded and device-independent."""

import pytest
import torch

from acquire.data import ImageSet
from gans.checkpoint import save_checkpoint
from gans.pggan import PgganConfig
from gans.base import ConditionalGenerator
from gans.registry import get_family
from gans.sources import GanNotTrainedError, gan_weights_digests, generated_source, trained_checkpoint
from runners import train_gans


def test_the_suggested_command_trains_only_the_missing_gans_and_leaves_quality_csv_alone(tmp_path):
    with pytest.raises(GanNotTrainedError) as error:
        gan_weights_digests(tmp_path, ["dada", "pggan"])
    message = str(error.value)
    assert f"python -m runners.train_gans --gans dada,pggan --out {tmp_path} --no-quality" in message
    assert "writes only" in message and "quality.csv" in message and "--preset" not in message


def test_a_committed_sidecar_without_weights_gives_its_own_settings(tmp_path):
    config = PgganConfig(channels=(32, 32, 16, 8), betas=(0.0, 0.9), images_per_stage=48000)
    data = ImageSet(torch.zeros(20, 1, 28, 28, dtype=torch.uint8), torch.arange(10).repeat(2))
    path = save_checkpoint(tmp_path / "pggan.pt", "pggan", get_family("pggan").build(config), config, data,
                           extra={"seed": 3}, half=True)
    path.unlink()  # committed lean: sidecar only
    with pytest.raises(GanNotTrainedError) as error:
        trained_checkpoint(tmp_path, "pggan")
    command = str(error.value).split("Train them with: ")[1].split("   (")[0]
    assert command == (f"python -m runners.train_gans --gans pggan --set pggan.channels=32,32,16,8 "
                       f"--set pggan.images_per_stage=48000 --set pggan.betas=0.0,0.9 --out {tmp_path} --no-quality "
                       "--seed 3 --train-size 20 --half")
    overrides = [train_gans.parse_override(word) for word in command.split() if "=" in word]
    assert train_gans.family_config("pggan", overrides) == config  # the flags parse back to the sidecar's config


def save_small_gan(gan_dir):
    """An untrained tiny small_dcgan checkpoint in gan_dir; returns gan_dir."""
    family = get_family("small_dcgan")
    config = family.config_class(latent_dim=8, embed_dim=4, g_channels=8, d_channels=8)
    torch.manual_seed(0)
    data = ImageSet(torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.arange(10))
    save_checkpoint(gan_dir / "small_dcgan.pt", "small_dcgan", family.build(config), config, data)
    return gan_dir


def test_generated_source_is_seeded_balanced_and_uint8(tmp_path):
    save_small_gan(tmp_path)
    a, b = (generated_source("small_dcgan", tmp_path, 3, seed, "cpu") for seed in (0, 0))
    c = generated_source("small_dcgan", tmp_path, 3, 1, "cpu")
    assert a.images_NCHW.dtype == torch.uint8 and torch.bincount(a.labels_N).tolist() == [3] * 10
    assert torch.equal(a.images_NCHW, b.images_NCHW) and not torch.equal(a.images_NCHW, c.images_NCHW)


def test_generated_pools_are_cached_locally_and_a_damaged_cache_is_sampled_again(tmp_path, monkeypatch):
    from gans import sources
    gan_dir = save_small_gan(tmp_path)
    first = sources.generated_source("small_dcgan", gan_dir, 5, 0, "cpu")
    cached = list((gan_dir / sources.POOL_CACHE).glob("*.pt"))
    assert len(cached) == 1 and (gan_dir / sources.POOL_CACHE / ".gitignore").read_text().strip().endswith("*")

    def no_sampling(*args, **kwargs):
        raise AssertionError("a cached pool must not be sampled again")

    monkeypatch.setattr(ConditionalGenerator, "sample", no_sampling)
    again = sources.generated_source("small_dcgan", gan_dir, 5, 0, "cpu")
    assert torch.equal(again.images_NCHW, first.images_NCHW) and torch.equal(again.labels_N, first.labels_N)
    monkeypatch.undo()
    cached[0].write_bytes(b"damaged")
    resampled = sources.generated_source("small_dcgan", gan_dir, 5, 0, "cpu")
    assert torch.equal(resampled.images_NCHW, first.images_NCHW)
