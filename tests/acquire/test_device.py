"""Device placement of scoring, training and prediction, checked without a GPU: the 'meta' device stands in for CUDA
(any op that mixes a meta tensor with a CPU one fails, as CPU with CUDA does), and the CUDA RNG must never be touched by
CPU-side seeding."""

import torch

from acquire.device import canonical
from acquire.inference import predict, to_float
from acquire.mc_dropout import draw_head_masks, mc_dropout_probs
from acquire.networks import new_model
from acquire.training import TrainConfig, train_classifier


def test_scoring_training_and_prediction_stay_on_the_model_device_with_cpu_rngs():
    rng = torch.Generator().manual_seed(0)
    images_NCHW = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=rng).to("meta")
    labels_N = torch.randint(0, 10, (40,), generator=rng).to("meta")
    model = new_model(0, "meta")
    masks = draw_head_masks(model, 4, torch.Generator().manual_seed(1))
    assert all(mask.device.type == "meta" for mask in masks)
    assert mc_dropout_probs(model, images_NCHW, masks).device.type == "meta"
    train_classifier(model, images_NCHW, labels_N, TrainConfig(epochs=1, batch_size=16),
                     torch.Generator().manual_seed(2))
    assert all(p.device.type == "meta" for p in model.parameters())
    assert predict(model, images_NCHW).device.type == "meta"


def test_model_initialisation_never_reseeds_the_cuda_rng(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("new_model touched the CUDA RNG")

    monkeypatch.setattr(torch.cuda, "manual_seed_all", forbidden)
    monkeypatch.setattr(torch.cuda, "manual_seed", forbidden)
    before = torch.random.get_rng_state()
    first, second = new_model(5, "cpu"), new_model(5, "cpu")
    assert torch.equal(first.fc1.weight, second.fc1.weight)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's CPU RNG is untouched too


def test_to_float_leaves_its_input_alone():
    floats = torch.full((1, 1, 2, 2), 255.0)
    assert to_float(floats).max() == 1.0 and floats.max() == 255.0


def test_cuda_without_an_index_means_the_current_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert canonical("cuda") == torch.device("cuda:0")  # as tensors made on 'cuda' report theirs
    assert canonical("cuda:1") == torch.device("cuda:1")
    assert canonical(torch.device("cpu")) == torch.device("cpu")
