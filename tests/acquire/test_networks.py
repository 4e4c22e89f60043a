"""Gal et al.'s CNN: its architecture, their code's network, Keras's initialisation, and factories whose weights depend
on the seed alone."""

import pytest
import torch

from acquire.networks import GalCNN, new_gal_code_glorot_model, new_gal_code_model, new_glorot_model, new_model


def test_architecture_matches_gal_et_al():
    model = GalCNN()
    assert (model.conv1.in_channels, model.conv1.out_channels, model.conv1.kernel_size) == (1, 32, (4, 4))
    assert (model.conv2.out_channels, model.conv2.kernel_size) == (32, (4, 4))
    assert (model.fc1.in_features, model.fc1.out_features, model.fc2.out_features) == (3872, 128, 10)
    assert (model.conv_dropout, model.dense_dropout) == (0.25, 0.5)
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_keras_code_network_is_gal_et_al_published_code():
    model = new_gal_code_model(0, "cpu")
    assert (model.conv1.kernel_size, model.conv2.kernel_size, model.pool_size) == ((3, 3), (3, 3), 5)
    assert (model.fc1.in_features, model.fc1.out_features) == (512, 256)  # 28 -> 26 -> 24 -> maxpool 5 -> 4x4x32
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="at least 9x9 pixels"):
        GalCNN(image_size=8, kernel_size=3, pool_size=5)


def test_keras_initialisation_is_glorot_uniform_with_zero_biases():
    for glorot, default in ((new_glorot_model, new_model), (new_gal_code_glorot_model, new_gal_code_model)):
        model, torch_default = glorot(0, "cpu"), default(0, "cpu")
        for name in ("conv1", "conv2", "fc1", "fc2"):
            layer = getattr(model, name)
            receptive = layer.weight[0].numel() // layer.weight.shape[1]  # kernel area (1 for a dense layer)
            bound = (6 / (layer.weight.shape[1] * receptive + layer.weight.shape[0] * receptive)) ** 0.5
            assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound, name
            assert layer.weight.mean().abs() < 0.1 * bound, name
            assert not layer.bias.any(), name
            assert layer.weight.shape == getattr(torch_default, name).weight.shape, name  # same network, other init
        assert torch.equal(glorot(0, "cpu").fc1.weight, model.fc1.weight)
        assert not torch.equal(glorot(1, "cpu").fc1.weight, model.fc1.weight)


def test_new_model_depends_only_on_seed():
    a, b, c = new_model(1, "cpu"), new_model(1, "cpu"), new_model(2, "cpu")
    assert torch.equal(a.fc1.weight, b.fc1.weight)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)


def test_gal_cnn_takes_any_square_image_shape_and_class_count():
    model = new_model(0, "cpu", num_classes=4, image_shape=(3, 32, 32))
    assert model.image_shape == (3, 32, 32) and model.fc1.in_features == 32 * 13 * 13
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match="square images"):
        new_model(0, "cpu", image_shape=(1, 28, 32))
