"""DADA phase II: the loss of eqs. 5-7 against hand computation, the folded decision rule, and training."""

import math

import pytest
import torch
from torch import nn

from acquire.augment import AugmentConfig
from gans.dada import DadaConfig, train_phase_one
from studies.dada_lowdata.phase_two import (PhaseTwoConfig, class_loss, folded_logits, generate_set, new_classifier,
                                 phase_two_loss, predict, train_phase_two)

e = math.e
TINY = DadaConfig(latent_dim=8, generator_width=8, discriminator_width=4, feature_dim=16, epochs=1.0, batch_size=16)

# k = 2: logits are [real_0, real_1, fake_0, fake_1]
LOGITS_REAL = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 1.0]])
LABELS_REAL = torch.tensor([0, 1])
LOGITS_GEN = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
LABELS_GEN = torch.tensor([0])


def test_class_loss_is_minus_log_of_real_plus_fake_probability():
    # sample 1, class 0: (e^1 + e^0) / (e + 3); sample 2, class 1: (e^2 + e^1) / (1 + e^2 + 1 + e)
    expected = (-math.log((e + 1) / (e + 3)) - math.log((e ** 2 + e) / (2 + e ** 2 + e))) / 2
    assert class_loss(LOGITS_REAL, LABELS_REAL).item() == pytest.approx(expected, rel=1e-6)


def test_class_loss_with_three_classes():
    # k = 3, logits 0..5, class 2: real class 2 is logit 2, fake class 2 is logit 5
    logits = torch.arange(6.0).unsqueeze(0)
    expected = -math.log((e ** 2 + e ** 5) / sum(e ** i for i in range(6)))
    assert class_loss(logits, torch.tensor([2])).item() == pytest.approx(expected, rel=1e-6)


def test_phase_two_loss_is_l_data_plus_l_gen_each_a_mean_over_its_own_samples():
    l_data = (-math.log((e + 1) / (e + 3)) - math.log((e ** 2 + e) / (2 + e ** 2 + e))) / 2
    l_gen = -math.log((1 + e) / (3 + e))  # generated sample of class 0: p(real_0) + p(fake_0), fake_0 is logit 2
    got = phase_two_loss(LOGITS_REAL, LABELS_REAL, LOGITS_GEN, LABELS_GEN)
    assert got.item() == pytest.approx(l_data + l_gen, rel=1e-6)


def test_folded_logits_softmax_is_real_plus_fake_probability():
    logits = torch.randn(5, 20, generator=torch.Generator().manual_seed(0))
    p = logits.softmax(1)
    assert torch.allclose(folded_logits(logits).softmax(1), p[:, :10] + p[:, 10:], atol=1e-6)


class FixedLogits(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[:len(x)]


def test_predict_takes_the_argmax_of_real_plus_fake():
    # the largest single logit is real class 0, but class 1's real + fake probability is larger
    logits = torch.tensor([[2.0, 1.5, -9.0, 1.5], [0.0, 0.0, 3.0, 0.0]])
    assert predict(FixedLogits(logits), torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).tolist() == [1, 0]


@pytest.fixture(scope="module")
def real_40(tiny_train):
    return tiny_train.subset(torch.arange(40))


@pytest.fixture(scope="module")
def augmenter(real_40):
    return train_phase_one(real_40, TINY, "cpu", torch.Generator().manual_seed(0), progress=False)[0]


def test_generate_set_has_per_real_samples_of_each_real_label(augmenter, real_40):
    generated = generate_set(augmenter, real_40.labels_N, 3, torch.Generator().manual_seed(0))
    assert generated.images_NCHW.shape == (120, 1, 28, 28) and generated.images_NCHW.dtype == torch.uint8
    assert torch.equal(generated.labels_N.bincount(minlength=10), 3 * real_40.labels_N.bincount(minlength=10))


def test_phase_two_fits_the_real_images(real_40):
    classifier = new_classifier(TINY, real_40, torch.Generator().manual_seed(0), "cpu")
    before = (predict(classifier, real_40.images_NCHW) == real_40.labels_N).float().mean()
    config = PhaseTwoConfig(steps=80, batch_size=20, lr=3e-3)
    train_phase_two(classifier, real_40, None, config, torch.Generator().manual_seed(1), progress=False)
    after = (predict(classifier, real_40.images_NCHW) == real_40.labels_N).float().mean()
    assert not classifier.training and before < 0.5 and after >= 0.9


def test_phase_two_with_generated_and_augmented_images_is_seeded(real_40, augmenter):
    config = PhaseTwoConfig(steps=4, batch_size=8, generated_per_real=2, augment=AugmentConfig())

    def run(seed):
        classifier = new_classifier(TINY, real_40, torch.Generator().manual_seed(0), "cpu")
        train_phase_two(classifier, real_40, augmenter, config, torch.Generator().manual_seed(seed), progress=False)
        return torch.cat([p.detach().flatten() for p in classifier.parameters()])

    first = run(1)
    assert torch.equal(first, run(1)) and not torch.equal(first, run(2))


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", -1), ("generated_per_real", 0), ("lr", 0.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        PhaseTwoConfig(**{field: value})


class MetaAugmenter(nn.Module):
    """Stands in for a frozen G on the 'meta' device: blank uint8 samples there."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, device="meta"))

    def sample(self, labels_N, generator=None):
        return torch.empty(len(labels_N), 1, 28, 28, dtype=torch.uint8, device="meta")


def test_phase_two_keeps_every_tensor_on_the_classifier_device(real_40):
    """C and G on the 'meta' device (shapes, no data), the real images and the generator on the CPU: any CPU
    tensor mixed into C's computation (a draw or a batch not moved) raises, as a CPU/CUDA mix would on a GPU."""
    generator = torch.Generator().manual_seed(0)
    classifier = new_classifier(TINY, real_40, generator, "meta")
    assert {p.device.type for p in classifier.parameters()} == {"meta"}
    config = PhaseTwoConfig(steps=2, batch_size=8, generated_per_real=2, augment=AugmentConfig())
    train_phase_two(classifier, real_40, MetaAugmenter(), config, generator, progress=False)
    assert {p.device.type for p in classifier.parameters()} == {"meta"}
    assert predict(classifier, real_40.images_NCHW.to("meta")).device.type == "meta"
    generated = generate_set(MetaAugmenter(), real_40.labels_N, 2, generator)
    assert generated.images_NCHW.device.type == generated.labels_N.device.type == "meta"


def test_new_classifier_does_not_touch_the_global_generators(real_40):
    state = torch.random.get_rng_state()
    new_classifier(TINY, real_40, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
