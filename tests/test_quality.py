"""Quality measures: the Fréchet distance against a closed form, and the measures' extremes on real data."""

import numpy as np
import torch

from acquire.data import ImageSet
from acquire.model import new_model
from gans.quality import QualityConfig, balanced_labels, frechet_distance, measure


def test_frechet_distance_of_gaussians_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 3))
    b = rng.normal(0, 2, (20000, 3)) + np.array([1.0, 0.0, 0.0])
    # ||mu||² + tr(I + 4I - 2·2I) = 1 + 3·(1 + 4 - 4) = 4
    assert abs(frechet_distance(torch.tensor(a), torch.tensor(b)) - 4.0) < 0.15
    assert abs(frechet_distance(torch.tensor(a), torch.tensor(a))) < 1e-6


def test_balanced_labels():
    assert torch.bincount(balanced_labels(3)).tolist() == [3] * 10


def test_measures_separate_real_from_label_shuffled_samples(tiny_train, tiny_test):
    reference = new_model(0, "cpu")
    from acquire.model import TrainConfig, train_classifier
    train_classifier(reference, tiny_train.images_NCHW, tiny_train.labels_N, TrainConfig(epochs=8, batch_size=32),
                     torch.Generator().manual_seed(0))
    config = QualityConfig(cas_epochs=8)
    real = measure(tiny_train, reference, tiny_test, config, "cpu")
    shuffled = ImageSet(tiny_train.images_NCHW, tiny_train.labels_N[torch.randperm(400, generator=torch.Generator().manual_seed(0))])
    wrong = measure(shuffled, reference, tiny_test, config, "cpu")
    assert real["label_agreement"] > 0.9 and wrong["label_agreement"] < 0.3
    assert real["cas_accuracy"] > wrong["cas_accuracy"] + 0.3
    assert real["frechet_distance"] == wrong["frechet_distance"]  # same images: distance ignores labels
