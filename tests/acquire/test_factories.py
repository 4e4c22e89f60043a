"""Model factories: called with the global RNG seeded and restored, and checked on the data before a run starts."""

import pytest
import torch
from torch import nn

from acquire.errors import UserError
from acquire.factories import check_model, make_model
from acquire.networks import GalCNN


def small_net(seed, device):
    return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10)).to(device)


def test_a_factory_is_called_with_the_global_rng_seeded_and_restored():
    before = torch.random.get_rng_state()
    a, b, c = (make_model(small_net, seed, "cpu") for seed in (1, 1, 2))
    assert torch.equal(a[2].weight, b[2].weight) and not torch.equal(a[2].weight, c[2].weight)
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        make_model(lambda seed, device: "a model", 0, "cpu")


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


@pytest.mark.parametrize("final", [nn.Softmax(dim=1), nn.Sequential(nn.Softmax(dim=1), nn.Identity())])
def test_a_model_that_returns_probabilities_is_refused(final):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), final)
    with pytest.raises(UserError, match=r"^the model's outputs are probabilities .*; return logits, not probabilities"):
        check_model(model, torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8), (1, 28, 28))


def test_logits_and_log_probabilities_are_accepted():
    for final in (nn.Identity(), nn.LogSoftmax(dim=1), nn.ReLU()):  # ReLU: >= 0, but rows do not sum to 1
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), final)
        assert check_model(model, torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8), (1, 28, 28)) == 10
