"""small_dcgan / large_dcgan: registration, sizes, sampling, seeded training and checkpoints."""

import pytest
import torch

from gans.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gans.dcgan import (DCGANConfig, LargeDCGANConfig, SmallDCGANConfig, build, build_discriminator,
                        init_networks)
from gans.base import ConditionalGenerator
from gans.registry import get_family

TINY = dict(latent_dim=8, embed_dim=4, g_channels=8, d_channels=8, batch_size=32, epochs=1.0)  # 4 steps on 128


def n_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def real_128(tiny_train):
    return tiny_train.subset(torch.arange(128))


@pytest.fixture(scope="module")
def trained_tiny(real_128):
    config = SmallDCGANConfig(**TINY)
    return get_family("small_dcgan").train(real_128, config, "cpu", torch.Generator().manual_seed(5), progress=False)


def test_both_families_registered():
    for name, config_class in (("small_dcgan", SmallDCGANConfig), ("large_dcgan", LargeDCGANConfig)):
        family = get_family(name)
        assert family.config_class is config_class and issubclass(config_class, DCGANConfig)
        assert isinstance(family.build(config_class()), ConditionalGenerator)
        assert family.config_from_dict({"epochs": 0.5}).epochs == 0.5


def test_generator_sizes_differ_at_least_fourfold():
    small, large = build(SmallDCGANConfig()), build(LargeDCGANConfig())
    assert n_parameters(large) >= 4 * n_parameters(small)
    assert 0.3e6 <= n_parameters(small) <= 1e6 and 3e6 <= n_parameters(large) <= 6e6


def test_forward_shapes_and_range():
    config = SmallDCGANConfig(**TINY)
    labels_N = torch.arange(10)
    images = build(config).eval()(torch.randn(10, config.latent_dim), labels_N)
    assert images.shape == (10, 1, 28, 28) and images.abs().max() <= 1
    assert build_discriminator(config)(images, labels_N).shape == (10,)


def test_sample_is_uint8_and_seed_reproducible():
    torch.manual_seed(0)
    generator = build(SmallDCGANConfig(**TINY))
    labels_N = torch.arange(10).repeat(3)
    a, b, c = (generator.sample(labels_N, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert a.dtype == torch.uint8 and a.shape == (30, 1, 28, 28)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_train_changes_weights_and_is_seed_reproducible(real_128, trained_tiny):
    config = SmallDCGANConfig(**TINY)
    initial, _ = init_networks(config, "cpu", torch.Generator().manual_seed(5))
    again = get_family("small_dcgan").train(real_128, config, "cpu", torch.Generator().manual_seed(5), progress=False)
    other = get_family("small_dcgan").train(real_128, config, "cpu", torch.Generator().manual_seed(6), progress=False)
    assert not trained_tiny.training
    trained, initial, again, other = (m.state_dict() for m in (trained_tiny, initial, again, other))
    assert all(torch.equal(trained[k], again[k]) for k in trained)
    assert not torch.equal(trained["project.weight"], initial["project.weight"])
    assert not torch.equal(trained["project.weight"], other["project.weight"])


def test_checkpoint_round_trip_and_family_check(tmp_path, real_128, trained_tiny):
    config = SmallDCGANConfig(**TINY)
    path = save_checkpoint(tmp_path / "small", "small_dcgan", trained_tiny, config, real_128)
    loaded, meta = load_checkpoint(path, "small_dcgan")
    labels_N = torch.arange(10).repeat(2)
    assert get_family(meta["family"]).config_from_dict(meta["config"]) == config
    assert torch.equal(loaded.sample(labels_N, torch.Generator().manual_seed(9)),
                       trained_tiny.sample(labels_N, torch.Generator().manual_seed(9)))
    with pytest.raises(CheckpointError):
        load_checkpoint(path, "large_dcgan")


def test_config_rejects_nonsense():
    for bad in ({"g_channels": 0}, {"epochs": 0}, {"batch_size": -1}, {"lr": 0}, {"beta1": 1.0}):
        with pytest.raises(ValueError):
            SmallDCGANConfig(**bad)
