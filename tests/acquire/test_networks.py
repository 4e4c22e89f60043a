"""Classifiers: the Gal CNN's architecture, model factories, deterministic training of any module, and that training
learns real digits."""

import pytest
import torch
from torch import nn

from acquire.metrics import accuracy, balanced_accuracy
from acquire.factories import check_model, make_model, seeded_global_rng
from acquire.inference import predict, to_float
from acquire.networks import GalCNN, new_gal_code_glorot_model, new_gal_code_model, new_glorot_model, new_model
from acquire.training import TrainConfig, train_classifier


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


def test_training_is_reproducible(tiny_train):
    images, labels = tiny_train.images_NCHW[:64], tiny_train.labels_N[:64]
    models = [train_classifier(new_model(0, "cpu"), images, labels, TrainConfig(epochs=2, batch_size=16),
                               torch.Generator().manual_seed(3)) for _ in range(2)]
    assert all(torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters()))


def test_training_learns_real_digits(tiny_train, tiny_test):
    model = train_classifier(new_model(0, "cpu"), tiny_train.images_NCHW, tiny_train.labels_N,
                             TrainConfig(epochs=8, batch_size=32), torch.Generator().manual_seed(3))
    assert accuracy(predict(model, tiny_test.images_NCHW), tiny_test.labels_N) > 0.75  # chance is 0.10


def test_predict_is_deterministic_and_chunk_independent(tiny_test):
    model = new_model(0, "cpu")
    whole = model.eval()(to_float(tiny_test.images_NCHW)).argmax(1)
    assert torch.equal(predict(model, tiny_test.images_NCHW, batch_size=7), whole)


def test_balanced_accuracy_against_hand_computation():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 0, 0, 1, 1, 0, 1])
    # recalls: class 0: 3/4, class 1: 1/2, class 2: 0/1
    assert abs(balanced_accuracy(predicted, labels) - (0.75 + 0.5 + 0.0) / 3) < 1e-12
    assert abs(accuracy(predicted, labels) - 4 / 7) < 1e-12


def test_train_config_rejects_nonsense():
    for bad in ({"epochs": 0}, {"batch_size": -1}, {"lr": 0}, {"weight_decay": -1}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_gal_dense_l2_shrinks_the_dense_weights(tiny_train):
    images, labels = tiny_train.images_NCHW[:40], tiny_train.labels_N[:40]
    norms = {}
    for c in (0.0, 3.5):
        model = train_classifier(new_model(0, "cpu"), images, labels, TrainConfig(epochs=10, batch_size=20, dense_l2_c=c),
                                 torch.Generator().manual_seed(0))
        norms[c] = model.fc1.weight.norm().item()
    assert norms[3.5] < 0.8 * norms[0.0]


def test_gal_cnn_takes_any_square_image_shape_and_class_count():
    model = new_model(0, "cpu", num_classes=4, image_shape=(3, 32, 32))
    assert model.image_shape == (3, 32, 32) and model.fc1.in_features == 32 * 13 * 13
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match="square images"):
        new_model(0, "cpu", image_shape=(1, 28, 32))


def small_net(seed, device):
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10)).to(device)


def test_a_factory_is_called_with_the_global_rng_seeded_and_restored():
    before = torch.random.get_rng_state()
    a, b, c = (make_model(small_net, seed, "cpu") for seed in (1, 1, 2))
    assert torch.equal(a[2].weight, b[2].weight) and not torch.equal(a[2].weight, c[2].weight)
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        make_model(lambda seed, device: "a model", 0, "cpu")


def test_any_module_trains_reproducibly_with_the_global_rng_seeded(tiny_train):
    images, labels = tiny_train.images_NCHW[:64], tiny_train.labels_N[:64]
    trained = []
    for _ in range(2):
        with seeded_global_rng(7, "cpu"):  # what the loop does around training: nn.Dropout draws from it
            trained.append(train_classifier(make_model(small_net, 0, "cpu"), images, labels,
                                            TrainConfig(epochs=3, batch_size=16), torch.Generator().manual_seed(3)))
    assert torch.equal(trained[0][2].weight, trained[1][2].weight)
    assert not trained[0].training
    with pytest.raises(ValueError, match="dense_l2_c=3.5 penalises the first dense layer `fc1`"):
        train_classifier(small_net(0, "cpu"), images, labels, TrainConfig(dense_l2_c=3.5), torch.Generator())


@pytest.mark.parametrize("model, message", [
    (GalCNN(), r"the data has images of shape \[C,H,W\] = \[3, 28, 28\], but the model takes \[1, 28, 28\]"),
    (nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), "cannot take images"),
    (nn.Sequential(nn.Flatten(), nn.Linear(2352, 10), nn.Unflatten(1, (2, 5))), r"logits \[N,K\].*\[2, 2, 5\]"),
])
def test_models_that_do_not_fit_the_data_are_refused(model, message):
    with pytest.raises(ValueError, match=message):
        check_model(model, torch.zeros(2, 3, 28, 28, dtype=torch.uint8), (3, 28, 28))


def test_check_model_reads_the_number_of_classes():
    assert check_model(nn.Sequential(nn.Flatten(), nn.Linear(2352, 7)), torch.zeros(2, 3, 28, 28,
                                                                                dtype=torch.uint8), (3, 28, 28)) == 7
