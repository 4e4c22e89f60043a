"""runners.train_gans: config overrides, and skipping GANs already trained with the same settings."""

import dataclasses

import pytest
import torch

from acquire.data import ImageSet
from gans.checkpoint import save_checkpoint
from gans.registry import get_family
from runners import train_gans


def test_overrides_are_typed_and_unknown_fields_refused():
    config = train_gans.family_config("small_dcgan", [("small_dcgan", "epochs", "0.5"), ("dada", "epochs", "9")])
    assert config.epochs == 0.5 and isinstance(config.epochs, float)
    with pytest.raises(ValueError, match="has no field 'nope'"):
        train_gans.family_config("small_dcgan", [("small_dcgan", "nope", "1")])


def test_quick_preset_shortens_every_family_and_set_still_wins():
    for name in train_gans.ALL_GANS:
        full, quick = train_gans.family_config(name, []), train_gans.family_config(name, [], "quick")
        assert quick != full, f"the quick preset leaves {name} at its full budget"
    assert train_gans.family_config("dada", [("dada", "epochs", "0.05")], "quick").epochs == 0.05


@pytest.mark.parametrize("name", ["pggan", "small_dcgan"])
def test_a_checkpoint_with_the_same_config_seed_and_data_is_up_to_date(tmp_path, name):
    family = get_family(name)
    config = family.config_class()
    data = ImageSet(torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.arange(10))
    path = save_checkpoint(tmp_path / f"{name}.pt", name, family.build(config), config, data, extra={"seed": 0})
    assert train_gans.is_up_to_date(path, config, data, seed=0)
    assert not train_gans.is_up_to_date(path, config, data, seed=1)
    other = ImageSet(torch.ones(10, 1, 28, 28, dtype=torch.uint8), torch.arange(10))
    assert not train_gans.is_up_to_date(path, config, other, seed=0)
    field = next(f.name for f in dataclasses.fields(config) if f.name in ("epochs", "images_per_stage"))
    changed = dataclasses.replace(config, **{field: getattr(config, field) * 2})
    assert not train_gans.is_up_to_date(path, changed, data, seed=0)
