"""The Gal CNN: architecture, deterministic training, and that training learns real digits."""

import torch

from acquire.metrics import accuracy, balanced_accuracy
from acquire.model import GalCNN, TrainConfig, new_model, predict, to_float, train_classifier


def test_architecture_matches_gal_et_al():
    model = GalCNN()
    assert (model.conv1.in_channels, model.conv1.out_channels, model.conv1.kernel_size) == (1, 32, (4, 4))
    assert (model.conv2.out_channels, model.conv2.kernel_size) == (32, (4, 4))
    assert (model.fc1.in_features, model.fc1.out_features, model.fc2.out_features) == (3872, 128, 10)
    assert (model.conv_dropout, model.dense_dropout) == (0.25, 0.5)
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)


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
    import pytest
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
