"""The fused MC-dropout scorer equals T full forward passes with the same sampled networks."""

import pytest
import torch

from acquire.mc_dropout import draw_head_masks, mc_dropout_probs, naive_mc_dropout_probs
from acquire.model import new_model


@pytest.fixture(scope="module")
def model_and_images(tiny_train):
    return new_model(0, "cpu"), tiny_train.images_NCHW[:64]


def test_fused_equals_naive_with_same_masks(model_and_images):
    model, images = model_and_images
    masks = draw_head_masks(model, 7, torch.Generator().manual_seed(0))
    fused = mc_dropout_probs(model, images, masks, chunk_size=10)
    naive = naive_mc_dropout_probs(model, images, 7, masks=masks)
    assert fused.shape == (64, 7, 10)
    torch.testing.assert_close(fused, naive, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fused.sum(-1), torch.ones(64, 7))


def test_samples_are_distinct_networks_shared_by_all_candidates(model_and_images):
    model, images = model_and_images
    probs = mc_dropout_probs(model, torch.cat([images[:1], images[:1]]),
                             draw_head_masks(model, 5, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(probs[0], probs[1])  # one network per sample t, the same for every candidate
    assert not torch.allclose(probs[0, 0], probs[0, 1])  # different networks across t


def test_masks_have_dropout_rates_and_inverted_scaling(model_and_images):
    model, _ = model_and_images
    masks = draw_head_masks(model, 200, torch.Generator().manual_seed(2))
    torch.testing.assert_close(masks.features_TD.unique(), torch.tensor([0.0, 1 / 0.75]))
    torch.testing.assert_close(masks.hidden_TH.unique(), torch.tensor([0.0, 2.0]))
    assert abs((masks.features_TD == 0).float().mean().item() - 0.25) < 0.01
    assert abs((masks.hidden_TH == 0).float().mean().item() - 0.5) < 0.02


def test_naive_without_masks_draws_per_image_masks(model_and_images):
    model, images = model_and_images
    probs = naive_mc_dropout_probs(model, torch.cat([images[:1], images[:1]]), 3,
                                   generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(probs[0], probs[1])


def test_rejects_zero_samples(model_and_images):
    with pytest.raises(ValueError, match="MC sample"):
        draw_head_masks(model_and_images[0], 0)
