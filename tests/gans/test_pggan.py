"""PGGAN: registration, sampling, the paper's building blocks against hand computations, growing, training,
checkpoints."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from gans.checkpoint import load_checkpoint, save_checkpoint
from gans.pggan import (EqualConv2d, check_every_class, EqualLinear, PgganConfig, PgganCritic, PgganGenerator, Trainer,
                        build, gradient_penalty, minibatch_stddev, padded_reals, pixel_norm, reals_at, schedule, upsample)
from gans.base import ConditionalGenerator
from gans.registry import get_family
from gans.training import seeded_weights

TINY = PgganConfig(latent_dim=8, label_dim=4, channels=(8, 8, 4, 4), images_per_stage=16, batch_sizes=(8, 8, 8, 8))


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_generator(seed: int = 0) -> PgganGenerator:
    torch.manual_seed(seed)
    return build(TINY)


def test_registered_with_its_config_and_builder():
    family = get_family("pggan")
    assert family.config_class is PgganConfig and family.build is build
    generator = family.build(family.config_class())
    assert isinstance(generator, ConditionalGenerator)
    assert (generator.latent_dim, generator.num_classes) == (64, 10)


def test_config_survives_json_and_rejects_nonsense():
    family = get_family("pggan")
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(TINY).items()}
    assert family.config_from_dict(as_json) == TINY
    for bad in ({"channels": (8, 8, 8)}, {"batch_sizes": (8, 8, 8, 6)}, {"images_per_stage": 0}, {"lr": 0}):
        with pytest.raises(ValueError):
            dataclasses.replace(TINY, **bad)


def test_sample_is_uint8_mnist_shaped_and_reproducible_per_seed():
    generator = tiny_generator()
    labels = torch.arange(10).repeat(2)
    a, b, c = (generator.sample(labels, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert a.dtype == torch.uint8 and a.shape == (20, 1, 28, 28)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_forward_is_the_full_32x32_network_cropped_to_28x28():
    generator, z, labels = tiny_generator(), torch.randn(5, TINY.latent_dim), torch.arange(5)
    full = generator.synthesize(z, labels, level=3)
    assert full.shape == (5, 1, 32, 32)
    assert torch.equal(generator(z, labels), full[:, :, 2:30, 2:30])
    assert generator(z, labels).abs().max() <= 1


def test_reals_are_padded_with_minus_one(tiny_train):
    reals, labels = padded_reals(tiny_train.subset(torch.arange(4)), TINY, "cpu")
    assert reals.shape == (4, 1, 32, 32) and torch.equal(labels, tiny_train.labels_N[:4])
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert torch.all(reals[:, :, border] == -1)
    assert torch.equal(reals[:, :, 2:30, 2:30], tiny_train.images_NCHW[:4].float() / 127.5 - 1)


def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared():
    torch.manual_seed(0)
    w = torch.randn(2 * 3 * 3, dtype=torch.float64, requires_grad=True)
    real, fake = torch.randn(5, 2, 3, 3, dtype=torch.float64), torch.randn(5, 2, 3, 3, dtype=torch.float64)
    penalty = gradient_penalty(lambda x: x.flatten(1) @ w, real, fake, torch.rand(5, 1, 1, 1, dtype=torch.float64),
                               lambda_gp=10.0)
    norm = w.detach().norm()
    assert torch.allclose(penalty, 10 * (norm - 1) ** 2)
    # differentiable with respect to the critic's weights: d/dw 10 (||w|| - 1)^2 = 20 (||w|| - 1) w / ||w||
    (grad_w,) = torch.autograd.grad(penalty, w)
    assert torch.allclose(grad_w, 20 * (norm - 1) * w.detach() / norm)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(3, 16, 5, 5) * torch.rand(3, 1, 5, 5) * 10
    assert torch.allclose(pixel_norm(x).square().mean(dim=1), torch.ones(3, 5, 5), atol=1e-5)
    z = torch.randn(4, 7) * 3
    assert torch.allclose(pixel_norm(z).square().mean(dim=1), torch.ones(4), atol=1e-5)


def test_equalised_layers_scale_unit_normal_weights_by_he_constant():
    torch.manual_seed(0)
    conv, linear = EqualConv2d(32, 64, 3), EqualLinear(300, 200)
    assert torch.allclose(conv.effective_weight, conv.weight * math.sqrt(2 / (32 * 3 * 3)))
    assert torch.allclose(linear.effective_weight, linear.weight * math.sqrt(2 / 300))
    assert abs(conv.weight.std().item() - 1) < 0.02 and abs(linear.weight.std().item() - 1) < 0.02
    x = torch.randn(2, 32, 6, 6)
    assert torch.allclose(conv(x), F.conv2d(x, conv.effective_weight, conv.bias, padding=1))

def test_minibatch_stddev_appends_the_group_feature_stddev():
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    for n in range(8):  # sample n is grouped with the samples of the same index modulo 2
        group = x[n % 2::2]
        expected = group.std(dim=0, unbiased=False).mean()
        assert torch.allclose(out[n, 3], expected.expand(2, 2), atol=1e-6)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_fade_in_at_alpha_zero_is_the_previous_resolution(level):
    torch.manual_seed(level)
    generator, critic = PgganGenerator(TINY), PgganCritic(TINY)
    z, labels = torch.randn(8, TINY.latent_dim), torch.arange(8)
    previous = generator.synthesize(z, labels, level - 1)
    assert torch.allclose(generator.synthesize(z, labels, level, alpha=0.0), upsample(previous), atol=1e-6)
    assert not torch.allclose(generator.synthesize(z, labels, level, alpha=0.5), upsample(previous), atol=1e-3)
    images = torch.rand(8, 1, 4 * 2 ** level, 4 * 2 ** level)
    assert torch.allclose(critic(images, level, alpha=0.0), critic(F.avg_pool2d(images, 2), level - 1), atol=1e-5)
    reals = torch.rand(8, 1, 32, 32)
    assert torch.allclose(reals_at(reals, level, 3, 0.0), upsample(reals_at(reals, level - 1, 3, 1.0)), atol=1e-6)


def test_schedule_is_stabilise_4x4_then_fade_and_stabilise_each_resolution():
    assert schedule(TINY) == [(0, False), (1, True), (1, False), (2, True), (2, False), (3, True), (3, False)]


def test_tiny_training_runs_all_stages_and_is_reproducible(tiny_train):
    images = tiny_train.subset(torch.arange(64))
    family = get_family("pggan")
    a, b, c = (family.train(images, TINY, "cpu", torch.Generator().manual_seed(s), progress=False) for s in (3, 3, 4))
    assert not a.training
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not all(torch.equal(state_a[k], state_c[k]) for k in state_a)
    # every layer of every resolution was trained: each tensor moved away from its seeded initial value
    with seeded_weights(torch.Generator().manual_seed(3)):  # the draw train() makes for G
        initial = PgganGenerator(TINY).state_dict()
    assert [k for k in state_a if torch.equal(state_a[k], initial[k])] == []
    labels = torch.arange(10)
    assert torch.equal(a.sample(labels, torch.Generator().manual_seed(0)),
                       b.sample(labels, torch.Generator().manual_seed(0)))


def test_checkpoint_round_trip_gives_identical_samples(tiny_train, tmp_path):
    images = tiny_train.subset(torch.arange(64))
    trained = get_family("pggan").train(images, TINY, "cpu", torch.Generator().manual_seed(0), progress=False)
    path = save_checkpoint(tmp_path / "pggan", "pggan", trained, TINY, images)
    loaded, meta = load_checkpoint(path, family="pggan")
    assert meta["config"]["channels"] == list(TINY.channels)
    labels = torch.arange(10).repeat(3)
    assert torch.equal(loaded.sample(labels, torch.Generator().manual_seed(5)),
                       trained.sample(labels, torch.Generator().manual_seed(5)))


def test_minibatch_stddev_groups_share_a_digit_for_reals_and_fakes(tiny_train):
    """Label-grouped batches let the stddev channel see within-class diversity (a z-ignoring G is caught)."""
    reals, labels = padded_reals(tiny_train, TINY, "cpu")
    G, D = PgganGenerator(TINY), PgganCritic(TINY)
    trainer = Trainer(TINY, reals, labels, G, D, G, torch.Generator().manual_seed(0))
    groups = TINY.mbstd_group
    labels_B = trainer.grouped_labels(16)
    assert torch.equal(labels_B.view(groups, 16 // groups), labels_B[:16 // groups].repeat(groups, 1))
    index_B = trainer.real_index(labels_B)
    assert torch.equal(labels[index_B], labels_B)
    drawn = trainer.real_index(torch.full((2000,), 3))
    assert set(drawn.tolist()) == set((labels == 3).nonzero().flatten().tolist())  # uniform over all the 3s
    with pytest.raises(ValueError, match="every class"):
        check_every_class(labels[labels != 7], TINY.num_classes)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a GPU"))])  # CUDA's autocast left the two toRGBs in two dtypes
@pytest.mark.parametrize("level", [1, 3])
def test_a_block_fades_in_under_bfloat16_autocast(level, device):
    generator = tiny_generator().to(device)
    z, labels = torch.randn(4, TINY.latent_dim, device=device), torch.arange(4, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        faded = generator.synthesize(z, labels, level=level, alpha=0.5)
    assert faded.shape == (4, 1, 4 * 2 ** level, 4 * 2 ** level) and torch.isfinite(faded.float()).all()
