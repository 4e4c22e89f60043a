"""Traditional augmentation: exact identity, shifts and quarter turns, the background fill, seeded randomness."""

import pytest
import torch

from acquire.augment import AugmentConfig, affine_transform, random_augment

IMAGES = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
NO_TURN, NO_ZOOM = torch.zeros(3), torch.ones(3)


def test_identity_transform_returns_the_images():
    assert torch.equal(affine_transform(IMAGES, NO_TURN, torch.zeros(3, 2), NO_ZOOM), IMAGES)
    floats = IMAGES.float() / 255
    assert torch.allclose(affine_transform(floats, NO_TURN, torch.zeros(3, 2), NO_ZOOM), floats, atol=1e-5)


def test_integer_shift_moves_content_right_and_up_with_zero_fill():
    out = affine_transform(IMAGES, NO_TURN, torch.tensor([[3.0, -2.0]]).expand(3, 2), NO_ZOOM)
    expected = torch.zeros_like(IMAGES)
    expected[:, :, :-2, 3:] = IMAGES[:, :, 2:, :-3]  # out[y, x] = in[y + 2, x - 3]
    assert torch.equal(out, expected)


def test_quarter_turn_is_counter_clockwise_rot90():
    out = affine_transform(IMAGES, torch.full((3,), 90.0), torch.zeros(3, 2), NO_ZOOM)
    assert torch.equal(out, torch.rot90(IMAGES, 1, dims=(2, 3)))


def test_each_image_gets_its_own_parameters():
    out = affine_transform(IMAGES, torch.tensor([0.0, 90.0, 0.0]), torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]),
                           NO_ZOOM)
    assert torch.equal(out[0], IMAGES[0]) and torch.equal(out[1], torch.rot90(IMAGES[1], 1, dims=(1, 2)))
    assert torch.equal(out[2, :, :, 1:], IMAGES[2, :, :, :-1])


def test_uncovered_pixels_take_the_fill_value():
    x = torch.rand(2, 1, 28, 28) * 2 - 1  # the GAN range, background -1
    out = affine_transform(x, torch.zeros(2), torch.tensor([[0.0, 4.0], [0.0, 4.0]]), torch.ones(2), fill=-1.0)
    assert torch.allclose(out[:, :, :4], torch.full((2, 1, 4, 28), -1.0))
    assert torch.allclose(out[:, :, 4:], x[:, :, :-4], atol=1e-5)


def test_zoom_out_shrinks_a_digit_towards_the_centre():
    square = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    square[:, :, 4:24, 4:24] = 255
    out = affine_transform(square, torch.zeros(1), torch.zeros(1, 2), torch.tensor([0.5]))
    assert out[0, 0, 14, 14] == 255 and out[0, 0, 6, 6] == 0 and out[0, 0, 12, 12] == 255


def test_random_augment_is_seeded_keeps_dtype_and_varies_per_image():
    config = AugmentConfig(max_rotation_deg=15, max_translation_px=3, max_zoom=0.1)
    first = random_augment(IMAGES, config, torch.Generator().manual_seed(1))
    assert first.dtype == torch.uint8 and first.shape == IMAGES.shape
    assert torch.equal(first, random_augment(IMAGES, config, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, random_augment(IMAGES, config, torch.Generator().manual_seed(2)))
    assert not torch.equal(first, IMAGES)
    same = IMAGES[:1].expand(4, 1, 28, 28)
    varied = random_augment(same, config, torch.Generator().manual_seed(0))
    assert len({tuple(img.flatten().tolist()) for img in varied}) == 4


def test_zero_ranges_are_the_identity():
    config = AugmentConfig(max_rotation_deg=0, max_translation_px=0, max_zoom=0)
    assert torch.equal(random_augment(IMAGES, config, torch.Generator().manual_seed(0)), IMAGES)


@pytest.mark.parametrize("field, value", [("max_rotation_deg", -1.0), ("max_translation_px", -0.5), ("max_zoom", 1.0)])
def test_config_rejects_bad_ranges(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})


def test_non_square_colour_images_shift_and_turn_exactly():
    wide = torch.randint(0, 256, (2, 3, 12, 20), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    none, ones = torch.zeros(2), torch.ones(2)
    assert torch.equal(affine_transform(wide, none, torch.zeros(2, 2), ones), wide)
    shifted = affine_transform(wide, none, torch.tensor([[3.0, -2.0]]).expand(2, 2), ones)
    assert torch.equal(shifted[:, :, :-2, 3:], wide[:, :, 2:, :-3])
    assert torch.equal(affine_transform(wide, torch.full((2,), 180.0), torch.zeros(2, 2), ones),
                       torch.rot90(wide, 2, dims=(2, 3)))
    centred = torch.zeros_like(wide)
    centred[:, :, :, 4:16] = wide[:, :, :, 4:16]  # a 12x12 block about the centre turns within the image
    turned = affine_transform(centred, torch.full((2,), 90.0), torch.zeros(2, 2), ones)
    assert torch.equal(turned[:, :, :, 4:16], torch.rot90(centred[:, :, :, 4:16], 1, dims=(2, 3)))
    assert turned[:, :, :, :4].eq(0).all() and turned[:, :, :, 16:].eq(0).all()


def test_random_augment_draws_on_the_generator_device_and_returns_on_the_images_device():
    """Images on the 'meta' device (shapes, no data), the generator on the CPU: an undelivered draw would raise,
    as a CPU/CUDA mix would on a GPU."""
    out = random_augment(IMAGES.to("meta"), AugmentConfig(), torch.Generator().manual_seed(0), fill=-1.0)
    assert out.device.type == "meta" and out.dtype == torch.uint8 and out.shape == IMAGES.shape
