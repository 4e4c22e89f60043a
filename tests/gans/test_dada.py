"""DADA phase I: the losses of eqs. 1-4 against hand computation, the label at every generator layer, weight
norm, seeded sampling and training, checkpoints."""

import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gans.checkpoint import load_checkpoint, save_checkpoint
from gans.dada import (DadaConfig, DadaDiscriminator, DadaGenerator, build, discriminator_loss,
                       feature_matching_loss, generator_class_loss, generator_loss, init_networks, train,
                       train_phase_one)
from gans.registry import get_family
from gans.training import train_images_to_float

TINY = DadaConfig(latent_dim=8, generator_width=8, discriminator_width=4, feature_dim=16, epochs=1.0, batch_size=16)

# k = 2: logits are [real_0, real_1, fake_0, fake_1]
LOGITS_REAL = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 1.0]])
LABELS_REAL = torch.tensor([0, 1])
LOGITS_FAKE = torch.tensor([[0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 3.0]])
LABELS_FAKE = torch.tensor([0, 1])
e = math.e


@pytest.fixture(scope="module")
def real_64(tiny_train):
    return tiny_train.subset(torch.arange(64))


@pytest.fixture(scope="module")
def trained_tiny(real_64):
    return train(real_64, TINY, "cpu", torch.Generator().manual_seed(0), progress=False)


def test_discriminator_loss_is_the_2k_loss():
    # real: -log p(y); fake: -log p(k + y), i.e. fake targets 2 and 3
    real = ((math.log(e + 3) - 1) + (math.log(1 + e ** 2 + 1 + e) - 2)) / 2
    fake = ((math.log(3 + e) - 1) + (math.log(3 * e + e ** 3) - 3)) / 2
    got = discriminator_loss(LOGITS_REAL, LABELS_REAL, LOGITS_FAKE, LABELS_FAKE)
    assert got.item() == pytest.approx(real + fake, rel=1e-6)


def test_generator_class_loss_wants_the_real_class_of_2k():
    # fakes pushed to their *real* class y (targets 0 and 1 of the 4 logits)
    expected = ((math.log(3 + e) - 0) + (math.log(3 * e + e ** 3) - 1)) / 2
    assert generator_class_loss(LOGITS_FAKE, LABELS_FAKE).item() == pytest.approx(expected, rel=1e-6)


FEATURES_REAL = torch.tensor([[1.0, 2.0], [3.0, 4.0], [0.0, 1.0], [5.0, 5.0]])
FEATURES_REAL_LABELS = torch.tensor([0, 0, 1, 3])            # class 3: real only
FEATURES_FAKE = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [9.0, 9.0]])
FEATURES_FAKE_LABELS = torch.tensor([0, 1, 1, 2])            # class 2: fake only


def test_feature_matching_is_per_class_over_classes_in_both_batches():
    # class 0: real mean (2, 3), fake (0, 0) -> 4 + 9 = 13; class 1: real (0, 1), fake (1.5, 1.5) -> 2.25 + 0.25
    expected = (13 + 2.5) / 2
    got = feature_matching_loss(FEATURES_REAL, FEATURES_REAL_LABELS, FEATURES_FAKE, FEATURES_FAKE_LABELS)
    assert got.item() == pytest.approx(expected)
    same = feature_matching_loss(FEATURES_REAL, FEATURES_REAL_LABELS, FEATURES_REAL, FEATURES_REAL_LABELS)
    assert same.item() == 0.0


def test_generator_loss_is_eq4():
    features_real = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    features_fake = torch.tensor([[1.0, 0.0], [1.0, 3.0]])
    # per class: ||(0,0)-(1,0)||² = 1 and ||(1,1)-(1,3)||² = 4 -> mean 2.5
    class_loss = ((math.log(3 + e) - 0) + (math.log(3 * e + e ** 3) - 1)) / 2
    got = generator_loss(LOGITS_FAKE, LABELS_FAKE, features_real, LABELS_REAL, features_fake, 0.5)
    assert got.item() == pytest.approx(class_loss + 0.5 * 2.5, rel=1e-6)


def test_generator_receives_the_label_at_every_layer():
    gen = DadaGenerator(TINY).eval()
    labels = torch.tensor([0, 3, 9])
    one_hot = nn.functional.one_hot(labels, 10).float()
    seen = {}
    layers = {"fc": gen.fc, "up1": gen.up1, "up2": gen.up2}
    hooks = [layer.register_forward_pre_hook(lambda module, inputs, name=name: seen.__setitem__(name, inputs[0]))
             for name, layer in layers.items()]
    z = torch.randn(3, TINY.latent_dim)
    with torch.no_grad():
        out = gen(z, labels)
    for hook in hooks:
        hook.remove()
    assert torch.equal(seen["fc"][:, -10:], one_hot)
    for name in ("up1", "up2"):
        label_channels = seen[name][:, -10:]
        assert torch.equal(label_channels, one_hot[:, :, None, None].expand_as(label_channels)), name
    with torch.no_grad():
        assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1
        assert not torch.allclose(gen(z, torch.tensor([1, 3, 9]))[0], out[0])
        assert torch.equal(gen(z, torch.tensor([1, 3, 9]))[1:], out[1:])


def test_weight_norm_on_every_layer_of_both_networks():
    for net in (DadaGenerator(TINY), DadaDiscriminator(TINY)):
        layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
        assert len(layers) >= 3
        assert all(parametrize.is_parametrized(layer, "weight") for layer in layers)


def test_discriminator_is_a_2k_classifier_with_feature_layer():
    disc = DadaDiscriminator(TINY).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    features = disc.features(x)
    assert features.shape == (5, TINY.feature_dim)
    assert disc(x).shape == (5, 20)
    assert torch.equal(disc.logits(features), disc(x))


def test_data_dependent_init_normalises_outputs(real_64):
    real, labels = train_images_to_float(real_64, "cpu")
    gen, disc = init_networks(TINY, real, labels, torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden = disc.convs[0](real)  # on the init batch (noise-free here): roughly standardised
        assert hidden.mean().abs() < 0.3 and 0.7 < hidden.std() < 1.3
        assert 0.05 < disc.eval()(real).std() < 0.2  # last layer initialised to std 0.1


def test_sample_is_uint8_and_seed_reproducible():
    gen = build(TINY)
    labels = torch.tensor([0, 1, 2, 7])
    a = gen.sample(labels, torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and a.shape == (4, 1, 28, 28)
    assert torch.equal(a, gen.sample(labels, torch.Generator().manual_seed(1)))
    assert not torch.equal(a, gen.sample(labels, torch.Generator().manual_seed(2)))


def test_train_is_seed_reproducible(real_64, trained_tiny):
    gen, disc = train_phase_one(real_64, TINY, "cpu", torch.Generator().manual_seed(0), progress=False)
    assert isinstance(trained_tiny, DadaGenerator) and not trained_tiny.training and not disc.training
    assert all(torch.equal(p, q) for p, q in zip(gen.state_dict().values(), trained_tiny.state_dict().values()))
    other = train(real_64, TINY, "cpu", torch.Generator().manual_seed(1), progress=False)
    assert not torch.equal(other.state_dict()["up2.bias"], trained_tiny.state_dict()["up2.bias"])


def test_checkpoint_round_trip(tmp_path, real_64, trained_tiny):
    path = save_checkpoint(tmp_path / "dada", "dada", trained_tiny, TINY, real_64)
    loaded, meta = load_checkpoint(path, "dada")
    labels = torch.arange(10)
    assert meta["config"]["generator_width"] == TINY.generator_width
    assert torch.equal(loaded.sample(labels, torch.Generator().manual_seed(3)),
                       trained_tiny.sample(labels, torch.Generator().manual_seed(3)))


def test_registered_and_config_rejects_nonsense():
    assert get_family("dada").build is build
    for bad in ({"generator_width": 0}, {"epochs": 0}, {"lr": -1}, {"feature_matching_weight": -1},
                {"batch_size": 2.5}):
        with pytest.raises(ValueError):
            DadaConfig(**bad)
