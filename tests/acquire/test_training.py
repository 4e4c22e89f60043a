"""Training: deterministic for a seed and data, learns real digits, trains any module; its settings are checked;
prediction and the metrics it is judged by."""

import dataclasses
import re

import numpy as np
import pytest
import torch
from torch import nn

from acquire.errors import UserError
from acquire.factories import make_model
from acquire.seeding import seeded_global_rng
from acquire.inference import predict, to_float
from acquire.metrics import accuracy, balanced_accuracy
from acquire.networks import dropout_mask, new_model
from acquire.training import TrainConfig, takes_rng, train_classifier
from tests.acquire.test_factories import small_net


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


@pytest.mark.parametrize("bad, message", [
    ({"epochs": 0}, "epochs must be >= 1, got 0"),
    ({"epochs": 1.5}, "epochs must be a whole number >= 1, got 1.5"),
    ({"epochs": 2.0}, "epochs must be a whole number >= 1, got 2.0"),
    ({"batch_size": -1}, "batch_size must be >= 1, got -1"),
    ({"batch_size": 2.5}, "batch_size must be a whole number >= 1, got 2.5"),
    ({"lr": 0}, "lr must be > 0, got 0"),
    ({"lr": float("inf")}, "lr must be a finite number, got inf"),
    ({"lr": float("nan")}, "lr must be a finite number, got nan"),
    ({"lr": "1e-3"}, "lr must be a number, got '1e-3'"),
    ({"weight_decay": -1}, "weight_decay must be >= 0, got -1"),
    ({"weight_decay": float("nan")}, "weight_decay must be a finite number, got nan"),
    ({"dense_l2_c": float("inf")}, "dense_l2_c must be a finite number, got inf"),
    ({"dense_l2_c": -3.5}, "dense_l2_c must be >= 0, got -3.5"),
])
def test_train_config_refuses_settings_that_cannot_be_right_in_one_line(bad, message):
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        TrainConfig(**bad)


def test_train_config_takes_the_paper_defaults_and_whole_numbers_of_any_integer_type():
    assert TrainConfig() == TrainConfig(epochs=100, batch_size=128, lr=1e-3, weight_decay=0.0, dense_l2_c=0.0)
    TrainConfig(epochs=np.int64(3), batch_size=np.int32(8), lr=1, weight_decay=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 0


def test_gal_dense_l2_shrinks_the_dense_weights(tiny_train):
    images, labels = tiny_train.images_NCHW[:40], tiny_train.labels_N[:40]
    norms = {}
    for c in (0.0, 3.5):
        model = train_classifier(new_model(0, "cpu"), images, labels,
                                 TrainConfig(epochs=10, batch_size=20, dense_l2_c=c),
                                 torch.Generator().manual_seed(0))
        norms[c] = model.fc1.weight.norm().item()
    assert norms[3.5] < 0.8 * norms[0.0]


def test_any_module_trains_reproducibly_with_the_global_rng_seeded(tiny_train):
    images, labels = tiny_train.images_NCHW[:64], tiny_train.labels_N[:64]
    trained = []
    for _ in range(2):
        with seeded_global_rng(7, "cpu"):  # what the loop does around training: nn.Dropout draws from it
            trained.append(train_classifier(make_model(small_net, 0, "cpu"), images, labels,
                                            TrainConfig(epochs=3, batch_size=16), torch.Generator().manual_seed(3)))
    assert torch.equal(trained[0][2].weight, trained[1][2].weight)
    assert not trained[0].training
    with pytest.raises(UserError, match="dense_l2_c=3.5 penalises the first dense layer `fc1`"):
        train_classifier(small_net(0, "cpu"), images, labels, TrainConfig(dense_l2_c=3.5), torch.Generator())


class RngNet(nn.Module):
    """A user's model whose forward takes `rng`: its dropout draws from the rng training gives it."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x_NCHW, rng=None):
        h_ND = x_NCHW.flatten(1)
        return self.fc(h_ND * dropout_mask(h_ND.shape, 0.5, rng, h_ND.device) if self.training else h_ND)


def test_a_model_whose_forward_takes_rng_draws_its_dropout_from_the_training_rng(tiny_train):
    images, labels = tiny_train.images_NCHW[:64], tiny_train.labels_N[:64]
    weights = []
    for global_seed in (1, 2):  # the global RNG differs between the two trainings; the rng does not
        torch.manual_seed(global_seed)
        model = make_model(lambda seed, device: RngNet(), 0, "cpu")
        train_classifier(model, images, labels, TrainConfig(epochs=2, batch_size=16), torch.Generator().manual_seed(3))
        weights.append(model.fc.weight)
    assert takes_rng(RngNet()) and not takes_rng(small_net(0, "cpu"))
    assert torch.equal(weights[0], weights[1])
