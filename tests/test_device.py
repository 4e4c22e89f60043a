"""Device placement, checked without a GPU: the 'meta' device stands in for CUDA (any op that mixes a meta tensor
with a CPU one fails, as CPU with CUDA does), and the CUDA RNG must never be touched by CPU-side seeding."""

import pytest
import torch

from acquire.data import ImageSet
from acquire.device import canonical
from acquire.loop import ActiveLearningRun
from acquire.mc_dropout import draw_head_masks, mc_dropout_probs
from acquire.inference import predict, to_float
from acquire.networks import new_model
from acquire.training import TrainConfig, train_classifier
from acquire.pool import CandidatePool
from tests.test_loop import tiny_config


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=generator),
                    torch.randint(0, 10, (40,), generator=generator))


def test_a_pool_joins_its_sources_then_lives_wholly_on_the_run_device(images):
    pool = CandidatePool({"raw": images, "gan": images.subset(range(10))}, device="meta")
    for tensor in (pool.images_NCHW, pool.labels_N, pool.source_N, pool._available_N):
        assert tensor.device.type == "meta"
    assert pool.fingerprint["gan"]["images"] == 10


def test_a_run_refuses_pools_on_another_device(images, tmp_path):
    with pytest.raises(ValueError, match="lives on cpu but the run on meta"):
        ActiveLearningRun(tiny_config(), {"raw": CandidatePool({"raw": images})}, images, tmp_path, device="meta")
    assert not tmp_path.joinpath("config.json").exists()


def test_scoring_training_and_prediction_stay_on_the_model_device_with_cpu_generators(images):
    pool = CandidatePool({"raw": images}, device="meta")
    model = new_model(0, "meta")
    masks = draw_head_masks(model, 4, torch.Generator().manual_seed(1))
    assert masks.features_TD.device.type == "meta" and masks.hidden_TH.device.type == "meta"
    assert mc_dropout_probs(model, pool.images_NCHW, masks).device.type == "meta"
    train_classifier(model, pool.images_NCHW, pool.labels_N, TrainConfig(epochs=1, batch_size=16),
                     torch.Generator().manual_seed(2))
    assert all(p.device.type == "meta" for p in model.parameters())
    assert predict(model, pool.images_NCHW).device.type == "meta"


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_run_on_cuda_accepts_a_pool_built_on_cuda(images, tmp_path):
    pool = CandidatePool({"raw": images}, device="cuda")
    with ActiveLearningRun(tiny_config(), {"raw": pool}, images.to("cuda"), tmp_path, device="cuda") as run:
        assert run.device == pool.device
