"""MC dropout: the fused scorer equals T full forward passes with the same sampled networks, and the generic path
for any nn.Module equals a naive per-image loop (and, on Gal's CNN written with nn.Dropout, the fused scorer); any
model exposing its trunk and dropout head (TrunkHead) gets the fused scorer."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import acquire
from acquire.errors import UserError
from acquire.functions import bald
from acquire.inference import to_float
from acquire.loop import ExperimentConfig
from acquire.mc_dropout import (DropoutMasks, check_mc_dropout, draw_dropout_masks, draw_head_masks,
                                TrunkHead, generic_mc_dropout_probs, mc_dropout_probs, mc_probs, mc_scores,
                                naive_mc_dropout_probs)
from acquire.networks import GalCNN, dropout_mask, new_gal_code_model, new_model


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


def test_fused_equals_naive_on_the_keras_code_network(tiny_train):
    model, images = new_gal_code_model(0, "cpu"), tiny_train.images_NCHW[:32]
    masks = draw_head_masks(model, 5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(mc_dropout_probs(model, images, masks, chunk_size=7),
                               naive_mc_dropout_probs(model, images, 5, masks=masks), atol=1e-6, rtol=1e-5)


def test_samples_are_distinct_networks_shared_by_all_candidates(model_and_images):
    model, images = model_and_images
    probs = mc_dropout_probs(model, torch.cat([images[:1], images[:1]]),
                             draw_head_masks(model, 5, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(probs[0], probs[1])  # one network per sample t, the same for every candidate
    assert not torch.allclose(probs[0, 0], probs[0, 1])  # different networks across t


def test_masks_have_dropout_rates_and_inverted_scaling(model_and_images):
    model, _ = model_and_images
    masks = draw_head_masks(model, 200, torch.Generator().manual_seed(2))
    features_TD, hidden_TH = masks
    assert features_TD.shape == (200, 3872) and hidden_TH.shape == (200, 128)
    torch.testing.assert_close(features_TD.unique(), torch.tensor([0.0, 1 / 0.75]))
    torch.testing.assert_close(hidden_TH.unique(), torch.tensor([0.0, 2.0]))
    assert abs((features_TD == 0).float().mean().item() - 0.25) < 0.01
    assert abs((hidden_TH == 0).float().mean().item() - 0.5) < 0.02


def test_naive_without_masks_draws_per_image_masks(model_and_images):
    model, images = model_and_images
    probs = naive_mc_dropout_probs(model, torch.cat([images[:1], images[:1]]), 3, rng=torch.Generator().manual_seed(0))
    assert not torch.allclose(probs[0], probs[1])


def test_rejects_zero_samples(model_and_images):
    with pytest.raises(ValueError, match="MC sample"):
        draw_head_masks(model_and_images[0], 0)


# ---- the generic path: any nn.Module with nn.Dropout layers ------------------------------------------------------

def small_net(seed: int = 0) -> nn.Module:
    """conv, relu, maxpool, flatten, dropout .3, dense, relu, dropout .6, dense 10: float images [N,1,28,28]."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Dropout(0.3),
                         nn.Linear(4 * 6 * 6, 16), nn.ReLU(), nn.Dropout(0.6), nn.Linear(16, 10))


def naive_sequential_probs(net: nn.Sequential, images_NCHW: torch.Tensor, masks: DropoutMasks) -> torch.Tensor:
    """[N, T, K] by hand: one image at a time, layer by layer, Dropout layer i multiplying by its mask [t]."""
    mask_of = dict(zip(masks.layers, masks.masks))
    probs = torch.empty(len(images_NCHW), masks.num_samples, 10)
    with torch.no_grad():
        for t in range(masks.num_samples):
            for n in range(len(images_NCHW)):
                h = to_float(images_NCHW[n:n + 1])
                for layer in net:
                    h = h * mask_of[layer][t] if isinstance(layer, nn.Dropout) else layer(h)
                probs[n, t] = h.softmax(-1)[0]
    return probs


def test_generic_equals_a_naive_per_image_loop_with_the_same_masks(model_and_images, one_thread):
    images = model_and_images[1][:20]
    net = small_net()
    masks = draw_dropout_masks(net, 6, (1, 28, 28), torch.Generator().manual_seed(0))
    assert [m.shape for m in masks.masks] == [(6, 144), (6, 16)]  # per dropout layer: [T, per-image input shape]
    generic = generic_mc_dropout_probs(net, images, masks, chunk_size=7)  # chunks of 7, 7, 6 share the masks
    torch.testing.assert_close(generic, naive_sequential_probs(net, images, masks), atol=1e-6, rtol=1e-5)


def test_generic_samples_networks_not_per_image_masks(model_and_images):
    images = model_and_images[1][:1].repeat(3, 1, 1, 1)
    probs = mc_probs(small_net(), images, 5, torch.Generator().manual_seed(1), chunk_size=2)
    torch.testing.assert_close(probs[0], probs[1])  # network t is the same for every candidate, across chunks too
    torch.testing.assert_close(probs[0], probs[2])
    assert not torch.allclose(probs[0, 0], probs[0, 1])
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 5))


def gal_as_sequential(model: GalCNN) -> nn.Sequential:
    """The same network as `model` (shared weights) written with nn.Dropout layers, for the generic path."""
    return nn.Sequential(model.conv1, nn.ReLU(), model.conv2, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Dropout(model.conv_dropout), model.fc1, nn.ReLU(), nn.Dropout(model.dense_dropout),
                         model.fc2)


def test_generic_path_on_gal_cnn_matches_the_fused_scorer(model_and_images, one_thread):
    model, images = model_and_images
    fused = mc_probs(model, images, 8, torch.Generator().manual_seed(3))
    generic = mc_probs(gal_as_sequential(model), images, 8, torch.Generator().manual_seed(3))
    torch.testing.assert_close(generic, fused, atol=1e-6, rtol=1e-5)  # the same masks are drawn in the same order


def test_generic_masks_have_each_layers_rate_and_scaling():
    masks = draw_dropout_masks(small_net(), 300, (1, 28, 28), torch.Generator().manual_seed(2))
    for mask, p in zip(masks.masks, (0.3, 0.6)):
        torch.testing.assert_close(mask.unique(), torch.tensor([0.0, 1 / (1 - p)]))
        assert abs((mask == 0).float().mean().item() - p) < 0.02


@pytest.mark.parametrize("net, message", [
    (nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), "no nn.Dropout layer"),
    (nn.Sequential(nn.Dropout2d(0.5), nn.Flatten(), nn.Linear(784, 10)),
     r"layer\(s\) 0 \(Dropout2d\); replace them by nn.Dropout"),
])
def test_models_that_cannot_be_sampled_are_refused(net, message):
    with pytest.raises(ValueError, match=message):
        check_mc_dropout(net, (1, 28, 28))


def test_a_dropout_layer_used_at_two_shapes_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop, self.fc = nn.Dropout(0.5), nn.Linear(28, 10)

        def forward(self, x):
            return self.fc(self.drop(self.drop(x).mean(2))).flatten(1)

    with pytest.raises(ValueError, match="used at input shapes"):
        draw_dropout_masks(Twice(), 2, (1, 28, 28))


def test_per_image_masks_are_each_candidates_own_draws(model_and_images):
    model, images = model_and_images
    T, D, H = 6, model.fc1.in_features, model.fc1.out_features
    probs = mc_probs(model, images[:9], T, torch.Generator().manual_seed(0), masking="per_image")
    rng = torch.Generator().manual_seed(0)  # one chunk: the feature masks [N,T,D], then the hidden ones [N,T,H]
    features_NTD = dropout_mask((9, T, D), model.conv_dropout, rng, "cpu")
    hidden_NTH = dropout_mask((9, T, H), model.dense_dropout, rng, "cpu")
    with torch.no_grad():
        trunk = model.trunk(to_float(images[:9]))
        expected = torch.stack([torch.stack([model.head(trunk[n:n + 1], masks=(features_NTD[n, t], hidden_NTH[n, t]))[0]
                                             for t in range(T)]) for n in range(9)]).softmax(-1)
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=1e-5)
    twins = mc_probs(model, torch.cat([images[:1], images[:1]]), T, torch.Generator().manual_seed(0),
                     masking="per_image")
    assert not torch.allclose(twins[0], twins[1])  # unlike shared masks, a copy of an image is sampled afresh


def test_per_image_and_shared_masks_sample_one_predictive_distribution(model_and_images):
    model, images = model_and_images
    shared, per_image = (mc_probs(model, images[:4], 3000, torch.Generator().manual_seed(3), masking=masking)
                         for masking in ("shared", "per_image"))
    torch.testing.assert_close(per_image.mean(1), shared.mean(1), atol=0.02, rtol=0)
    streamed = mc_scores(model, images[:4], 50, bald, torch.Generator().manual_seed(4), masking="per_image")
    assert streamed.shape == (4,) and (streamed >= 0).all()


def test_per_image_masks_need_a_trunk_head_model_and_a_known_masking(model_and_images):
    _, images = model_and_images
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))
    with pytest.raises(ValueError, match=r"per-image MC-dropout masks need a model that exposes its trunk and dropout "
                                         r"head \(acquire.mc_dropout.TrunkHead"):
        check_mc_dropout(net, (1, 28, 28), "per_image")
    with pytest.raises(ValueError, match="masking must be one of shared, per_image"):
        mc_probs(net, images[:2], 2, masking="per_sample")
    with pytest.raises(ValueError, match="mc_masks must be one of shared, per_image, got 'per_sample'"):
        ExperimentConfig(mc_masks="per_sample")


# ---- the TrunkHead protocol: any model exposing its trunk and dropout head gets the fused scorer ------------------

class UserNet(nn.Module):
    """A user's model, not a GalCNN: its own trunk (conv 3x3, average pooling) and a head written with nn.Dropout,
    exposing trunk / head_dropout / sampled_heads (acquire.mc_dropout.TrunkHead)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.drop1, self.fc1 = nn.Conv2d(1, 6, 3), nn.Dropout(0.2), nn.Linear(6 * 13 * 13, 24)
        self.drop2, self.fc2 = nn.Dropout(0.4), nn.Linear(24, 10)
        self.trunk_calls = 0

    def trunk(self, x_NCHW):
        self.trunk_calls += 1
        return F.avg_pool2d(F.relu(self.conv(x_NCHW)), 2).flatten(1)

    def forward(self, x_NCHW):
        return self.fc2(self.drop2(F.relu(self.fc1(self.drop1(self.trunk(x_NCHW))))))

    def head_dropout(self):
        return [((self.fc1.in_features,), self.drop1.p), ((self.fc1.out_features,), self.drop2.p)]

    def sampled_heads(self, masks):
        def heads(features_ND):
            hidden = F.relu(self.fc1(features_ND.unsqueeze(1) * masks[0]))
            return self.fc2(hidden * masks[1])
        return heads


def test_a_users_trunk_head_model_gets_the_fused_scorer_with_the_generic_paths_probabilities(model_and_images,
                                                                                                one_thread):
    images = model_and_images[1][:20]
    net = UserNet()
    assert isinstance(net, TrunkHead) and isinstance(new_model(0, "cpu"), TrunkHead)
    assert not isinstance(small_net(), TrunkHead) and acquire.TrunkHead is TrunkHead
    fused = mc_probs(net, images, 6, torch.Generator().manual_seed(0), chunk_size=7)
    assert net.trunk_calls == 3  # once per chunk of 7, 7, 6 images: the fused path, not T forward passes
    masks = draw_dropout_masks(net, 6, (1, 28, 28), torch.Generator().manual_seed(0))
    generic = generic_mc_dropout_probs(net, images, masks, chunk_size=7)
    assert net.trunk_calls > 3 + 6  # the hook-based path ran the whole model T times per chunk
    assert fused.shape == (20, 6, 10) and not torch.allclose(fused[:, 0], fused[:, 1])
    torch.testing.assert_close(fused, generic, atol=1e-6, rtol=1e-5)
    per_image = mc_probs(net, torch.cat([images[:1], images[:1]]), 6, torch.Generator().manual_seed(0),
                         masking="per_image")
    assert per_image.shape == (2, 6, 10) and not torch.allclose(per_image[0], per_image[1])


def test_a_trunk_head_model_without_head_dropout_is_refused():
    net = UserNet()
    net.head_dropout = list
    with pytest.raises(UserError, match="names no dropout, so its MC samples would all be one network"):
        check_mc_dropout(net, (1, 28, 28))
