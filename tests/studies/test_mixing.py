"""studies.ratio_sweep.mixing: replacing real images by generated ones, or adding them, class by class."""

import pytest
import torch

from acquire.data import ImageSet
from studies.ratio_sweep.mixing import generated_per_class, mix, spread, take_per_class

ORDER = torch.arange(10)


def tagged(n_per_class: int, first_tag: int) -> ImageSet:
    """n_per_class images of each digit, class-major; pixel [0,0] holds a unique tag (first_tag, first_tag+1, ...)."""
    labels = torch.arange(10).repeat_interleave(n_per_class)
    images = torch.zeros(len(labels), 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(first_tag, first_tag + len(labels))
    return ImageSet(images, labels)


REAL = tagged(5, 0)  # 50 real images, tags 0..49
POOL = tagged(8, 100)  # 80 generated images, tags 100..179


def split(images: ImageSet) -> tuple[ImageSet, ImageSet]:
    is_real = images.images_NCHW[:, 0, 0, 0] < 100
    return images.subset(is_real), images.subset(~is_real)


@pytest.mark.parametrize("ratio", [0.0, 0.2, 0.5, 0.6, 1.0])
def test_replace_keeps_every_class_count(ratio):
    images, n_real, n_generated = mix(REAL, POOL, "replace", ratio, ORDER, torch.Generator().manual_seed(0))
    real, generated = split(images)
    assert n_real == len(real) == round((1 - ratio) * 50) and n_generated == len(generated) == 50 - n_real
    assert torch.equal(images.labels_N.bincount(minlength=10), torch.full((10,), 5))
    # every generated image carries the label it was sampled for
    assert torch.equal(generated.labels_N, (generated.images_NCHW[:, 0, 0, 0].long() - 100) // 8)


def test_replace_ends_are_all_real_and_all_generated():
    all_real, n_real, n_generated = mix(REAL, POOL, "replace", 0.0, ORDER, torch.Generator())
    assert (n_real, n_generated) == (50, 0) and torch.equal(all_real.images_NCHW, REAL.images_NCHW)
    none_real, n_real, n_generated = mix(REAL, POOL, "replace", 1.0, ORDER, torch.Generator())
    assert (n_real, n_generated) == (0, 50) and (none_real.images_NCHW[:, 0, 0, 0] >= 100).all()


@pytest.mark.parametrize("ratio", [0.2, 0.5, 1.0])
def test_add_keeps_all_real_and_adds_class_balanced_generated(ratio):
    images, n_real, n_generated = mix(REAL, POOL, "add", ratio, ORDER, torch.Generator().manual_seed(1))
    real, generated = split(images)
    assert torch.equal(real.images_NCHW, REAL.images_NCHW) and n_real == 50
    assert n_generated == len(generated) == round(ratio * 50)
    counts = generated.labels_N.bincount(minlength=10)
    assert counts.max() - counts.min() <= 1


def test_uneven_counts_go_to_the_first_classes_of_the_order():
    order = torch.tensor([3, 7, 0, 1, 2, 4, 5, 6, 8, 9])
    assert spread(23, order).tolist() == [3, 2, 2, 3, 2, 2, 2, 3, 2, 2]
    # replace 25 of 50: 2 or 3 generated per class, the real images fill each class back to 5
    images, _, _ = mix(REAL, POOL, "replace", 0.5, order, torch.Generator())
    _, generated = split(images)
    assert generated.labels_N.bincount(minlength=10).tolist() == [3, 3, 3, 3, 2, 2, 2, 3, 2, 2]
    assert generated_per_class("add", 0.5, 50, order).sum() == 25


def test_smaller_ratios_keep_a_superset_of_the_real_images():
    kept = [set(split(mix(REAL, POOL, "replace", r, ORDER, torch.Generator())[0])[0].images_NCHW[:, 0, 0, 0].tolist())
            for r in (0.2, 0.4, 0.8)]
    assert kept[0] > kept[1] > kept[2]


def test_generated_draw_depends_on_the_generator_only():
    def draw(seed):
        return mix(REAL, POOL, "add", 1.0, ORDER, torch.Generator().manual_seed(seed))[0].images_NCHW
    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))


def test_take_per_class_draws_without_replacement():
    index = take_per_class(POOL.labels_N, torch.full((10,), 8), torch.Generator().manual_seed(0))
    assert sorted(index.tolist()) == list(range(80))


@pytest.mark.parametrize("args, message", [
    (("replace", 1.5), r"ratio must lie in \[0, 1\]"),
    (("swap", 0.5), "mode must be one of replace, add"),
])
def test_bad_mode_or_ratio_is_refused(args, message):
    with pytest.raises(ValueError, match=message):
        mix(REAL, POOL, *args, ORDER, torch.Generator())


def test_too_small_pool_or_unbalanced_real_set_is_refused():
    with pytest.raises(ValueError, match="need 5 of class 0; only 1 exist"):
        mix(REAL, tagged(1, 100), "add", 1.0, ORDER, torch.Generator())
    with pytest.raises(ValueError, match="class-balanced"):
        mix(REAL.subset(torch.arange(49)), POOL, "add", 1.0, ORDER, torch.Generator())


def test_real_images_and_pool_on_different_devices_are_refused():
    on_meta = ImageSet(POOL.images_NCHW.to("meta"), POOL.labels_N)
    with pytest.raises(ValueError, match="real images are on cpu but the generated pool on meta"):
        mix(REAL, on_meta, "add", 0.5, ORDER, torch.Generator())


def test_take_per_class_gives_cpu_positions_whatever_the_labels_device():
    index = take_per_class(POOL.labels_N, torch.full((10,), 2), torch.Generator().manual_seed(0))
    assert index.device.type == "cpu" and len(index) == 20
