import pytest
import torch
import torch.nn.functional as F
from torch import nn

from acquire.errors import UserError
from gans.recipes import LowDataRecipe

SHAPE = (1, 12, 20)


def networks():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(8, 240), nn.BatchNorm1d(240), nn.Tanh(), nn.Unflatten(1, SHAPE))
    discriminator = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.LeakyReLU(0.2), nn.Flatten(), nn.LazyLinear(1))
    discriminator(torch.zeros(1, *SHAPE))
    return generator, discriminator


def step(hooks, generator, discriminator, opt_g, opt_d, real, rng):
    """One D step then one G step with the hooks where a family's step would call them."""
    z = torch.randn(len(real), 8, generator=rng)
    fake = generator(z)
    real_logits = discriminator(hooks.augment_for_discriminator(real, rng)).squeeze(1)
    fake_logits = discriminator(hooks.augment_for_discriminator(fake.detach(), rng)).squeeze(1)
    hooks.observe_real_logits(real_logits)
    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = F.softplus(-discriminator(hooks.augment_for_discriminator(fake, rng))).mean()
    opt_g.zero_grad()
    g_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in generator[0].parameters())
    opt_g.step()
    hooks.after_generator_step(generator, len(real))


def run(recipe, steps, state=None):
    generator, discriminator = networks()
    hooks = recipe.start(generator, channels=1)
    opt_g, opt_d = (torch.optim.Adam(net.parameters(), lr=0.01) for net in (generator, discriminator))
    rng = torch.Generator().manual_seed(1)
    real = torch.rand(16, *SHAPE, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for _ in range(steps):
        step(hooks, generator, discriminator, opt_g, opt_d, real, rng)
    return hooks, generator


def test_hooks_augment_adapt_and_average_during_training():
    recipe = LowDataRecipe(ada=True, ada_kimg=0.1, ema_kimg=0.1)
    hooks, generator = run(recipe, steps=8)
    assert hooks.p > 0.0 and hooks.ada.steps == 8  # D soon calls all 16 real images real: p rises
    sampler = hooks.sampling_generator(generator)
    assert sampler is hooks.ema.module and not torch.equal(sampler[0].weight, generator[0].weight)
    assert hooks.ema.images_seen == 8 * 16


def test_without_ada_and_ema_the_hooks_are_plain_diffaugment():
    hooks, generator = run(LowDataRecipe(ema_kimg=0), steps=2)
    assert hooks.p == 1.0 and hooks.sampling_generator(generator) is generator
    images = torch.zeros(3, *SHAPE)
    assert hooks.augment_for_discriminator(images, torch.Generator()) is not images
    off = LowDataRecipe(diffaugment="", ema_kimg=0).start(generator, channels=1)
    assert off.augment_for_discriminator(images, torch.Generator()) is images


def test_state_dict_restores_ada_and_ema(tmp_path):
    recipe = LowDataRecipe(ada=True, ada_kimg=0.05, ema_kimg=0.1)
    hooks, _ = run(recipe, steps=6)
    torch.save(hooks.state_dict(), tmp_path / "hooks.pt")
    generator, _ = networks()
    fresh = recipe.start(generator, channels=1)
    fresh.load_state_dict(torch.load(tmp_path / "hooks.pt", weights_only=True))
    assert fresh.p == hooks.p and fresh.ada.state_dict() == hooks.ada.state_dict()
    assert torch.equal(fresh.ema.module[0].weight, hooks.ema.module[0].weight)
    with pytest.raises(UserError, match="another low-data recipe"):
        LowDataRecipe(ema_kimg=0).start(generator, channels=1).load_state_dict(hooks.state_dict())


def test_bad_recipes_are_refused_before_training():
    with pytest.raises(UserError, match="unknown DiffAugment"):
        LowDataRecipe(diffaugment="translation,rotate")
    with pytest.raises(UserError, match="ada=true"):
        LowDataRecipe(diffaugment="", ada=True)
    with pytest.raises(UserError, match="ema_kimg"):
        LowDataRecipe(ema_kimg=-1)
    with pytest.raises(UserError, match="ADA needs"):
        LowDataRecipe(ada_target=2.0)
    with pytest.raises(UserError, match="drop 'color'"):
        LowDataRecipe(diffaugment="translation,color").start(nn.Linear(1, 1), channels=1)
    assert LowDataRecipe(diffaugment="translation,color").start(nn.Linear(1, 1), channels=3).p == 1.0
