"""The names committed run directories store their model and trainer by resolve to the built-in functions, and a
new run records a built-in by that name."""

import json
from functools import partial
from pathlib import Path

from acquire.builtins import BUILTIN_MODELS, BUILTIN_TRAINERS, builtin_name
from acquire.networks import new_gal_code_glorot_model, new_gal_code_model, new_glorot_model, new_model
from acquire.training import train_classifier

RESULTS = Path(__file__).resolve().parents[2] / "results"


def test_the_stored_names_map_to_the_built_in_functions():
    assert BUILTIN_MODELS == {"acquire.model:new_model": new_model,
                              "acquire.model:new_gal_code_model": new_gal_code_model,
                              "acquire.model:new_glorot_model": new_glorot_model,
                              "acquire.model:new_gal_code_glorot_model": new_gal_code_glorot_model}
    assert BUILTIN_TRAINERS == {"acquire.model:train_classifier": train_classifier}


def test_a_built_in_is_recorded_by_its_stored_name_and_anything_else_is_not_built_in():
    assert builtin_name(new_gal_code_model) == "acquire.model:new_gal_code_model"
    assert builtin_name(partial(new_model, num_classes=10)) == "acquire.model:new_model"
    assert builtin_name(train_classifier) == "acquire.model:train_classifier"
    assert builtin_name(lambda seed, device: None) is None


def test_every_committed_config_names_a_built_in_model_and_trainer():
    configs = [json.loads(path.read_text()) for path in RESULTS.glob("*/config.json")]
    named = [config for config in configs if "model" in config]
    assert named  # results/ holds runs that record their model
    for config in named:
        assert config["model"] in BUILTIN_MODELS and config.get("trainer", next(iter(BUILTIN_TRAINERS))) in \
            BUILTIN_TRAINERS
