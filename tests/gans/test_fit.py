"""gans.fit with the low-data recipe: it is recorded, resumes bit-identically, samples the weight average, and each
family honours or refuses it."""

import json

import pytest
import torch

from acquire.errors import UserError
from gans.checkpoint import load_checkpoint, training_state_path
from gans.dada import DadaConfig
from gans.dcgan import SmallDCGANConfig
from gans.fit import fit_generator
from gans.pggan import PgganConfig
from gans.recipes import LowDataRecipe

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = SmallDCGANConfig(latent_dim=8, embed_dim=4, g_channels=8, d_channels=8, batch_size=32, epochs=2.0)
RECIPE = LowDataRecipe(ada=True, ada_kimg=0.5, ema_kimg=0.1)


def weights(generator):
    return {k: v.clone() for k, v in generator.state_dict().items()}


def test_the_recipe_is_recorded_and_an_interrupted_fit_resumes_to_the_same_weights(tmp_path, gan_images):
    straight = fit_generator("small_dcgan", SMALL, gan_images, tmp_path / "a.pt", 0, recipe=RECIPE, progress=False)
    sidecar = json.loads((tmp_path / "a.json").read_text())
    assert sidecar["recipe"]["ema_kimg"] == 0.1 and sidecar["recipe"]["ada"] is True
    state = torch.load(training_state_path(tmp_path / "a.pt"), weights_only=True)
    assert state["loop"]["hook_recipe"]["ada"]["steps"] == 8  # ADA read D's real logits at every step
    # the sampled network is the weight average, not the last generator
    raw = state["loop"]["generator"]
    assert any(not torch.equal(raw[k], v) for k, v in straight.generator.state_dict().items() if v.is_floating_point())
    # stopped after 3 of 8 steps by a half budget, then continued under the full one
    half = SmallDCGANConfig(**{**SMALL.__dict__, "epochs": 0.75})
    fit_generator("small_dcgan", half, gan_images, tmp_path / "b.pt", 0, recipe=RECIPE, progress=False)
    resumed = fit_generator("small_dcgan", SMALL, gan_images, tmp_path / "b.pt", 0, recipe=RECIPE, progress=False)
    assert resumed.session.sessions == 2
    for key, value in weights(straight.generator).items():
        assert torch.equal(value, resumed.generator.state_dict()[key]), key
    again = fit_generator("small_dcgan", SMALL, gan_images, tmp_path / "a.pt", 0, recipe=RECIPE, progress=False)
    assert again.session is None  # up to date: loaded, not retrained
    with pytest.raises(UserError, match="low-data recipe"):  # the state of a recipe run does not continue without it
        fit_generator("small_dcgan", SmallDCGANConfig(**{**SMALL.__dict__, "epochs": 3.0}), gan_images,
                      tmp_path / "a.pt", 0, progress=False)


def test_a_recipe_changes_training_and_without_one_nothing_changes(tmp_path, gan_images):
    plain = fit_generator("small_dcgan", SMALL, gan_images, tmp_path / "p.pt", 0, progress=False)
    assert json.loads((tmp_path / "p.json").read_text())["recipe"] is None
    augmented = fit_generator("small_dcgan", SMALL, gan_images, tmp_path / "r.pt", 0,
                              recipe=LowDataRecipe(ema_kimg=0), progress=False)
    differs = [not torch.equal(v, augmented.generator.state_dict()[k]) for k, v in plain.generator.state_dict().items()
               if v.is_floating_point()]
    assert any(differs)


def test_pggan_keeps_its_own_average_and_dada_refuses_ada(tmp_path, gan_images):
    pggan = PgganConfig(latent_dim=8, label_dim=4, channels=(8, 8, 4, 4), images_per_stage=16, batch_sizes=(8, 8, 8, 8))
    fit_generator("pggan", pggan, gan_images, tmp_path / "g.pt", 0, recipe=LowDataRecipe(), progress=False)
    assert json.loads((tmp_path / "g.json").read_text())["recipe"]["ema_kimg"] == 0.0
    load_checkpoint(tmp_path / "g.pt", "pggan")
    dada = DadaConfig(latent_dim=8, generator_width=8, discriminator_width=4, feature_dim=16, epochs=0.5, batch_size=16)
    with pytest.raises(UserError, match="recipe.ada=false"):
        fit_generator("dada", dada, gan_images, tmp_path / "d.pt", 0, recipe=LowDataRecipe(ada=True), progress=False)
    assert not (tmp_path / "d.pt").exists()
