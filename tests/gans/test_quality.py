"""Quality measures: the Fréchet distance against a closed form, and the measures' extremes on real data."""

import numpy as np
import torch

from acquire.data import ImageSet
from acquire.networks import new_model
from torch import nn

from gans.base import balanced_labels
from gans.quality import Judge, QualityConfig, agreement_by_class, frechet_distance, measure
from gans.registry import get_family


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
    from acquire.training import TrainConfig, train_classifier
    train_classifier(reference, tiny_train.images_NCHW, tiny_train.labels_N, TrainConfig(epochs=8, batch_size=32),
                     torch.Generator().manual_seed(0))
    config = QualityConfig(cas_epochs=8)
    real = measure(tiny_train, reference, tiny_test, config, "cpu")
    order = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    shuffled = ImageSet(tiny_train.images_NCHW, tiny_train.labels_N[order])
    wrong = measure(shuffled, reference, tiny_test, config, "cpu")
    assert real["label_agreement"] > 0.9 and wrong["label_agreement"] < 0.3
    assert real["cas_accuracy"] > wrong["cas_accuracy"] + 0.3
    assert real["frechet_distance"] == wrong["frechet_distance"]  # same images: distance ignores labels


class ReadsItsAnswer(nn.Module):
    """A stand-in reference CNN: predicts the class written in each image's first pixel."""

    def forward(self, x_NCHW):
        return nn.functional.one_hot((x_NCHW[:, 0, 0, 0] * 255).round().long(), 10).float()


def test_agreement_by_class_names_each_digits_main_confusion():
    labels_N = torch.tensor([4] * 10 + [7] * 4 + [1] * 2)
    predicted_N = torch.tensor([4] * 7 + [9] * 2 + [7] + [7] * 3 + [1] + [1] * 2)
    images_NCHW = torch.zeros(16, 1, 28, 28, dtype=torch.uint8)
    images_NCHW[:, 0, 0, 0] = predicted_N.to(torch.uint8)
    rows = {row["class"]: row for row in agreement_by_class(ReadsItsAnswer(), ImageSet(images_NCHW, labels_N))}
    assert sorted(rows) == [1, 4, 7]
    assert (rows[4]["samples"], rows[4]["agreement"], rows[4]["most_confused_with"], rows[4]["confused_share"]) == (
        10, 0.7, 9, 0.2)
    assert (rows[7]["agreement"], rows[7]["most_confused_with"], rows[7]["confused_share"]) == (0.75, 1, 0.25)
    assert (rows[1]["agreement"], rows[1]["most_confused_with"], rows[1]["confused_share"]) == (1.0, -1, 0.0)


def test_the_real_baseline_sample_lives_on_the_judges_device(tiny_train, tiny_test):
    judge = Judge(tiny_train, tiny_test, QualityConfig(samples_per_class=2, seed=0), device="meta")
    real = judge.real_samples()
    assert real.images_NCHW.device.type == "meta" and len(real) == 20


def test_the_judge_works_for_any_square_shape_and_class_count():
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 3, 16, 16), generator=rng, dtype=torch.uint8)
    train = ImageSet(images, torch.arange(3).repeat(10))
    judge = Judge(train, train, QualityConfig(samples_per_class=4, reference_epochs=1, cas_epochs=1), "cpu")
    assert (judge.image_shape, judge.num_classes) == ((3, 16, 16), 3)
    spec = get_family("small_dcgan")
    generator = spec.build(spec.config_class(g_channels=4, d_channels=4, image_channels=3, image_height=16,
                                             image_width=16, num_classes=3))
    samples = judge.samples(generator, "small_dcgan")
    assert samples.images_NCHW.shape == (12, 3, 16, 16) and torch.bincount(samples.labels_N).tolist() == [4] * 3
    measures = judge.measures(generator, "small_dcgan")
    assert 0 <= measures["label_agreement"] <= 1 and np.isfinite(measures["frechet_distance"])
    assert len(judge.real_samples()) == 12
