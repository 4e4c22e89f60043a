"""Streaming scoring: score functions applied chunk by chunk give the scores, and so the acquisitions, that scoring
all probabilities [N, T, K] at once gives, bit for bit; the loop streams score functions and gives selecting
functions the full probabilities."""

import pytest
import torch
from torch import nn

from acquire import loop as loop_module
from acquire.functions import REGISTRY, Acquisition, get_acquisition
from acquire.loop import ActiveLearningRun, ExperimentConfig
from acquire.mc_dropout import mc_probs, mc_scores
from acquire.networks import new_model
from acquire.training import TrainConfig
from acquire.pool import CandidatePool

SCORE_FUNCTIONS = sorted(name for name, a in REGISTRY.items() if not a.selects)


@pytest.fixture(scope="module")
def model_and_images(tiny_train):
    return new_model(3, "cpu"), tiny_train.images_NCHW


@pytest.mark.parametrize("name", SCORE_FUNCTIONS)
@pytest.mark.parametrize("chunk_size", [None, 7])  # default 256 (400 = 256 + 144), and many ragged chunks
def test_streamed_scores_are_bit_identical_to_scores_of_all_probabilities(model_and_images, one_thread, name,
                                                                           chunk_size):
    model, images = model_and_images
    acquisition = get_acquisition(name)
    whole = acquisition.score(mc_probs(model, images, 6, torch.Generator().manual_seed(1), chunk_size))
    streamed = mc_scores(model, images, 6, acquisition.score, torch.Generator().manual_seed(1), chunk_size)
    assert streamed.dtype == torch.float64 and torch.equal(streamed, whole)
    chosen = [acquisition.top_k(scores, 10, torch.Generator().manual_seed(2)) for scores in (whole, streamed)]
    assert torch.equal(chosen[0][0], chosen[1][0]) and torch.equal(chosen[0][1], chosen[1][1])
    assert torch.equal(chosen[0][0], acquisition.choose(mc_probs(model, images, 6, torch.Generator().manual_seed(1),
                                                                 chunk_size), 400, 10,
                                                        torch.Generator().manual_seed(2))[0])


def test_generic_models_stream_too(model_and_images, one_thread):
    _, images = model_and_images
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(784, 16), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(16, 10))
    bald = get_acquisition("bald")
    whole = bald.score(mc_probs(net, images, 5, torch.Generator().manual_seed(1), chunk_size=9))
    assert torch.equal(mc_scores(net, images, 5, bald.score, torch.Generator().manual_seed(1), chunk_size=9), whole)


def test_a_chunk_scored_to_the_wrong_shape_is_a_clear_error(model_and_images):
    model, images = model_and_images
    broken = Acquisition("broken", lambda probs_NTK: probs_NTK.mean(1).sum())
    with pytest.raises(ValueError, match=r"'broken' returned scores of shape \(\), expected \(7,\)"):
        mc_scores(model, images[:20], 3, broken.score, torch.Generator().manual_seed(0), chunk_size=7)


def test_the_loop_streams_score_functions_and_gives_selecting_ones_all_probabilities(tiny_train, tiny_test, tmp_path,
                                                                                    monkeypatch):
    seen = []
    real_mc_probs = loop_module.mc_probs

    def recording_mc_probs(*args, **kwargs):
        probs_NTK = real_mc_probs(*args, **kwargs)
        seen.append(tuple(probs_NTK.shape))
        return probs_NTK

    monkeypatch.setattr(loop_module, "mc_probs", recording_mc_probs)
    config = ExperimentConfig(acquisitions=["bald", "power_bald"], rounds=2, per_round=5, repeats=1, mc_samples=4,
                              pool_subset=120, train=TrainConfig(epochs=1, batch_size=16))
    with ActiveLearningRun(config, {"raw": CandidatePool({"raw": tiny_train})}, tiny_test, tmp_path) as run:
        run.run(progress=False)
    assert seen == [(120, 4, 10)] * 2  # power_bald's two rounds; bald never built [N, T, K]
