"""Every family is built from the data's shape and classes: any C, K >= 2, H and W from 8 to 128, non-square."""

import dataclasses

import pytest
import torch

from acquire.data import ImageSet
from acquire.errors import UserError
from gans.base import stride2_base, stride2_stages
from gans.checkpoint import load_checkpoint, save_checkpoint
from gans.registry import get_family

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {  # tiny widths and a few steps: only the shapes are under test
    "small_dcgan": dict(latent_dim=8, embed_dim=4, g_channels=4, d_channels=4, batch_size=8, epochs=0.5),
    "large_dcgan": dict(latent_dim=8, embed_dim=4, g_channels=4, d_channels=4, batch_size=8, epochs=0.5),
    "dada": dict(latent_dim=8, generator_width=4, discriminator_width=4, feature_dim=8, batch_size=8, epochs=0.5),
    "pggan": dict(latent_dim=8, label_dim=4, images_per_stage=8, mbstd_group=2),
}
SHAPES = [(3, 48, 48, 4), (1, 8, 8, 2), (1, 20, 36, 3), (3, 128, 128, 2)]


def config_for(family: str, shape: tuple[int, int, int, int]):
    channels, height, width, classes = shape
    spec = get_family(family)
    changes = dict(TINY[family], image_channels=channels, image_height=height, image_width=width,
                   num_classes=classes)
    if family == "pggan":  # 4 feature maps at every resolution, batches of 4 (one width per resolution)
        levels = len(spec.config_class(**changes).channels)
        changes.update(channels=(4,) * levels, batch_sizes=(4,) * levels)
    return spec.config_class(**changes)


def random_images(shape: tuple[int, int, int, int], per_class: int = 4) -> ImageSet:
    channels, height, width, classes = shape
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (classes * per_class, channels, height, width), generator=rng, dtype=torch.uint8)
    return ImageSet(images, torch.arange(classes).repeat_interleave(per_class))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("family", sorted(TINY))
def test_family_trains_and_samples_the_datas_shape(family, shape, tmp_path):
    config = config_for(family, shape)
    generator = get_family(family).train(random_images(shape), config, "cpu", torch.Generator().manual_seed(1),
                                         progress=False)
    labels = torch.arange(shape[3]).repeat(2)
    samples = generator.sample(labels, torch.Generator().manual_seed(2))
    assert samples.shape == (len(labels), *shape[:3]) and samples.dtype == torch.uint8
    path = save_checkpoint(tmp_path / family, family, generator, config, random_images(shape))
    loaded, meta = load_checkpoint(path, family)
    assert (meta["config"]["image_channels"], meta["config"]["image_height"], meta["config"]["image_width"],
            meta["config"]["num_classes"]) == shape
    assert torch.equal(loaded.sample(labels, torch.Generator().manual_seed(2)), samples)


@pytest.mark.parametrize("family", sorted(TINY))
def test_default_config_is_mnist_shaped(family):
    config = get_family(family).config_class()
    assert (config.image_channels, config.image_height, config.image_width, config.num_classes) == (1, 28, 28, 10)


@pytest.mark.parametrize("field, value", [("image_height", 7), ("image_width", 2000), ("image_channels", 0),
                                          ("num_classes", 1), ("num_classes", 2.5)])
@pytest.mark.parametrize("family", sorted(TINY))
def test_impossible_shapes_and_class_counts_are_refused(family, field, value):
    with pytest.raises(UserError, match=field):
        get_family(family).config_class(**{field: value})


@pytest.mark.parametrize("family, field", [("small_dcgan", "lr"), ("small_dcgan", "epochs"), ("dada", "lr"),
                                           ("dada", "input_noise_std"), ("pggan", "lr"), ("pggan", "lambda_gp"),
                                           ("pggan", "ema_decay")])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_and_inf_config_values_are_refused(family, field, value):
    with pytest.raises(UserError, match=field):
        get_family(family).config_class(**{field: value})


def test_pggan_resolutions_follow_the_larger_side():
    pggan = get_family("pggan").config_class
    assert pggan().channels == (64, 64, 32, 16) and pggan().batch_sizes == (16, 16, 32, 64)
    assert len(pggan(image_height=8, image_width=8).channels) == 2
    assert pggan(image_height=20, image_width=36).resolution == 64
    with pytest.raises(UserError, match="channels needs one width per resolution"):
        pggan(image_height=64, image_width=64, channels=(64, 64, 32, 16))


def test_generator_crops_back_what_the_architecture_pads():
    config = get_family("small_dcgan").config_class(image_height=20, image_width=36, g_channels=4, d_channels=4)
    assert config.base_size == (3, 5)  # 24x40 padded, three stride-2 stages
    generator = get_family("small_dcgan").build(config)
    assert generator(torch.randn(2, config.latent_dim), torch.tensor([0, 1])).shape == (2, 1, 20, 36)
    assert dataclasses.asdict(config)["image_width"] == 36


@pytest.mark.parametrize("height, width, stages, base", [(28, 28, 2, (7, 7)), (8, 8, 2, (2, 2)), (20, 36, 3, (3, 5)),
                                                         (128, 128, 4, (8, 8))])
def test_dcgan_and_dada_share_one_stride2_layout(height, width, stages, base):
    assert (stride2_stages(height, width), stride2_base(height, width)) == (stages, base)
    for family in ("small_dcgan", "dada"):
        config = get_family(family).config_class(image_height=height, image_width=width)
        assert (config.upsamplings, config.base_size) == (stages, base)
