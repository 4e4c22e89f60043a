"""A new GAN family is one file plus its registration: a tiny MLP GAN made only of what gans provides (the shared
adversarial step, loop and hooks) trains with the low-data recipe, loads and has a quick budget, and its
registration's options, not its name, decide how the recipe runs for it."""

import dataclasses
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from acquire.data import ImageSet
from acquire.errors import UserError
from gans import dcgan, training
from gans.base import ConditionalGenerator, balanced_samples, check_image_fields, image_shape
from gans.checkpoint import load_checkpoint, load_training_state, training_state_path
from gans.fit import fit_generator
from gans.recipes import LowDataRecipe
from gans.registry import FAMILIES, get_family, register_family
from gans.training import (BatchStream, TrainingSession, adversarial_step, run_steps, seeded_weights,
                           train_images_to_float)
from runners import train_gans

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGES = ImageSet(torch.randint(0, 256, (40, 1, 8, 8), generator=torch.Generator().manual_seed(0),
                                dtype=torch.uint8), torch.arange(4).repeat(10))


# ------------------------------------------------------------------ what gans/mlpgan.py would hold

@dataclass(frozen=True)
class MlpConfig:
    latent_dim: int = 4
    epochs: float = 2.0
    batch_size: int = 8
    num_classes: int = 4
    image_channels: int = 1
    image_height: int = 8
    image_width: int = 8

    def __post_init__(self):
        check_image_fields(self)


class MlpGenerator(ConditionalGenerator):
    def __init__(self, config: MlpConfig):
        super().__init__()
        self.latent_dim, self.num_classes, self.image_shape = config.latent_dim, config.num_classes, image_shape(config)
        self.embed = nn.Embedding(config.num_classes, config.latent_dim)
        self.net = nn.Linear(config.latent_dim, math.prod(self.image_shape))

    def forward(self, z_NZ, labels_N):
        return torch.tanh(self.net(z_NZ + self.embed(labels_N))).view(len(z_NZ), *self.image_shape)


class MlpDiscriminator(nn.Module):
    def __init__(self, config: MlpConfig):
        super().__init__()
        self.net = nn.Linear(math.prod(image_shape(config)), config.num_classes)

    def forward(self, images_NCHW, labels_N):
        return self.net(images_NCHW.flatten(1)).gather(1, labels_N[:, None]).squeeze(1)


def build(config: MlpConfig) -> MlpGenerator:
    return MlpGenerator(config)


def train(images, config, device, rng, progress=True, session=None, precision="fp32"):
    session = session or TrainingSession()
    real_NCHW, labels_N = train_images_to_float(images, device)
    with seeded_weights(rng):
        generator, discriminator = MlpGenerator(config).to(device), MlpDiscriminator(config).to(device)
    optimiser_g, optimiser_d = (torch.optim.Adam(net.parameters(), 1e-3) for net in (generator, discriminator))
    batches = BatchStream(len(images), config.batch_size, rng)
    parts = {"generator": generator, "discriminator": discriminator, "optimiser_g": optimiser_g,
             "optimiser_d": optimiser_d, "batches": batches}

    def step(index):
        batch_B = next(batches)
        z_BZ = torch.randn(len(batch_B), config.latent_dim, generator=rng)
        d_loss, g_loss = adversarial_step(generator, discriminator, optimiser_g, optimiser_d, real_NCHW[batch_B],
                                          labels_N[batch_B], z_BZ, session.hooks)
        return len(batch_B), {"d_loss": d_loss, "g_loss": g_loss}

    steps = max(1, math.ceil(config.epochs * len(images) / config.batch_size))
    run_steps(session, lambda: parts, rng, steps, step, lambda: generator, "mlp", progress)
    return session.hooks.sampling_generator(generator).eval()


# ------------------------------------------------------------------ the tests

@pytest.fixture
def mlp():
    register_family("mlp", MlpConfig, build, train, "a toy MLP GAN")
    yield get_family("mlp")
    FAMILIES.pop("mlp")


def test_a_family_of_one_file_trains_with_the_recipe_and_its_checkpoint_loads(tmp_path, mlp):
    assert dcgan.adversarial_step is training.adversarial_step  # the step the new family calls is dcgan's
    recipe = LowDataRecipe(ada=True, ada_kimg=0.01, ema_kimg=0.01)
    fitted = fit_generator("mlp", MlpConfig(), IMAGES, tmp_path / "m.pt", 0, recipe=recipe, progress=False)
    state = load_training_state(training_state_path(tmp_path / "m.pt"))
    assert state["steps"] == 10 and state["loop"]["hook_recipe"]["ada"]["steps"] == 10  # D's real logits fed ADA
    loaded, meta = load_checkpoint(tmp_path / "m.pt", "mlp")
    assert meta["recipe"]["ema_kimg"] == 0.01
    assert torch.equal(balanced_samples(loaded, 2, 0).images_NCHW, balanced_samples(fitted.generator, 2, 0).images_NCHW)


def test_the_quick_budget_defaults_to_a_tenth_and_registrations_are_checked(mlp):
    assert mlp.quick_changes() == {"epochs": 0.2}
    assert train_gans.family_config("mlp", [], "quick").epochs == 0.2
    assert "mlp: epochs=0.2" in train_gans.presets_help()
    with pytest.raises(UserError, match="quick_budget sets \\['nope'\\]"):
        register_family("bad", MlpConfig, build, train, quick_budget={"nope": 1})
    assert "bad" not in FAMILIES
    assert get_family("pggan").quick_changes() == {"images_per_stage": 4000}


def test_the_recipe_asks_the_registration_not_the_name(mlp, monkeypatch):
    recipe = LowDataRecipe(ada=True)
    assert recipe.for_family("mlp") is recipe
    monkeypatch.setitem(FAMILIES, "mlp", dataclasses.replace(mlp, own_ema=True))
    assert recipe.for_family("mlp") == dataclasses.replace(recipe, ema_kimg=0.0)
    monkeypatch.setitem(FAMILIES, "mlp", dataclasses.replace(mlp, supports_ada=False))
    with pytest.raises(UserError, match="mlp with recipe.ada=true: .*set recipe.ada=false"):
        recipe.for_family("mlp")
    assert get_family("pggan").own_ema and not get_family("dada").supports_ada
