import pytest
import torch

from acquire.errors import UserError
from gans.diffaugment import AdaptiveAugment, cutout, diff_augment, translation

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 12, 40), (3, 48, 20), (1, 8, 8)]


def images(shape, n=6, seed=0):
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_preserved_and_values_in_range(shape):
    policy = "translation,cutout,color" if shape[0] == 3 else "translation,cutout"
    x = images(shape)
    for p in (1.0, 0.5):
        out = diff_augment(x, policy, torch.Generator().manual_seed(1), p=p)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert not torch.equal(out, x)


@pytest.mark.parametrize("shape", [(1, 12, 40), (3, 48, 20)])
def test_gradients_flow_to_the_input(shape):
    policy = "translation,cutout,color" if shape[0] == 3 else "translation,cutout"
    x = images(shape).requires_grad_(True)
    diff_augment(x, policy, torch.Generator().manual_seed(2)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_p_zero_is_the_identity_and_draws_nothing():
    x, rng = images((3, 16, 24)), torch.Generator().manual_seed(3)
    before = rng.get_state()
    assert diff_augment(x, "translation,cutout,color", rng, p=0.0) is x
    assert torch.equal(rng.get_state(), before)


def test_same_rng_state_same_augmentation_and_p_one_changes_every_image():
    x = images((1, 28, 28), n=32)
    a = diff_augment(x, "translation,cutout", torch.Generator().manual_seed(4))
    b = diff_augment(x, "translation,cutout", torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert all(not torch.equal(a[i], x[i]) for i in range(len(x)))


def test_probability_applies_per_image():
    x = images((1, 16, 16), n=400)
    out = diff_augment(x, "cutout", torch.Generator().manual_seed(5), p=0.3)
    changed = sum(not torch.equal(out[i], x[i]) for i in range(len(x))) / len(x)
    assert 0.2 < changed < 0.4


def test_translation_shifts_by_at_most_an_eighth_and_pads():
    x = torch.ones(200, 1, 16, 24)
    shifted = translation(x, torch.Generator().manual_seed(6))
    # zero padding: the uncovered border is 0, at most 2 rows (16/8) and 3 columns (24/8)
    zero_rows = (shifted[:, 0].sum(2) == 0).sum(1)
    zero_cols = (shifted[:, 0].sum(1) == 0).sum(1)
    assert zero_rows.max() == 2 and zero_cols.max() == 3 and zero_rows.min() == 0
    assert torch.equal(translation(x, torch.Generator().manual_seed(6), padding="edge"), x)


def test_translation_moves_content_by_whole_pixels():
    x = torch.zeros(50, 1, 8, 8)
    x[:, 0, 4, 4] = 1
    out = translation(x, torch.Generator().manual_seed(0))
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(50))  # a shift of at most 1 keeps the pixel inside
    rows, cols = out[:, 0].sum(2).argmax(1), out[:, 0].sum(1).argmax(1)
    assert set(rows.tolist()) == {3, 4, 5} and set(cols.tolist()) == {3, 4, 5}


def test_cutout_zeroes_a_half_size_rectangle():
    x = torch.ones(300, 1, 20, 12)
    cut = cutout(x, torch.Generator().manual_seed(7))
    zeros = (cut == 0).sum((1, 2, 3))
    assert zeros.max() == 10 * 6 and zeros.min() > 0


def test_bad_policies_are_refused():
    with pytest.raises(UserError, match="drop 'color'"):
        diff_augment(images((1, 8, 8)), "translation,color", torch.Generator())
    with pytest.raises(UserError, match="unknown DiffAugment operation"):
        diff_augment(images((1, 8, 8)), "translation,flip", torch.Generator())
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        diff_augment(images((1, 8, 8)), "cutout", torch.Generator(), p=1.5)


def test_ada_p_rises_when_d_overfits_and_falls_otherwise():
    ada = AdaptiveAugment(target=0.6, adjust_every=4, speed_kimg=1.0)
    for _ in range(3):
        assert ada.observe(torch.ones(50)) == 0.0  # only every 4th step adjusts
    assert ada.observe(torch.ones(50)) == pytest.approx(200 / 1000)
    for _ in range(4):
        ada.observe(-torch.ones(50))
    assert ada.p == pytest.approx(0.0)
    for _ in range(40):
        ada.observe(torch.ones(50))
    assert ada.p == 1.0  # clipped
    ada.observe(torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0]))  # r = 0.2 < 0.6 in this partial interval
    for _ in range(3):
        ada.observe(torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0]))
    assert ada.p == pytest.approx(1.0 - 20 / 1000)


def test_ada_state_dict_resumes_identically():
    a, b = AdaptiveAugment(speed_kimg=0.5), AdaptiveAugment()
    steps = [torch.randn(16, generator=torch.Generator().manual_seed(i)) + 3 for i in range(11)]
    for logits in steps[:6]:
        a.observe(logits)
    b.load_state_dict(a.state_dict())
    for logits in steps[6:]:
        assert a.observe(logits) == b.observe(logits)
    assert a.state_dict() == b.state_dict() and a.p > 0


def test_ada_refuses_bad_settings():
    with pytest.raises(UserError, match="target"):
        AdaptiveAugment(target=1.5)
    with pytest.raises(UserError, match="adjust_every"):
        AdaptiveAugment(adjust_every=0)
