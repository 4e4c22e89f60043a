"""The GAN zoo's registry: family name -> its config class, generator builder and trainer, and --set parsing.

How to add a family (one file, gans/<family>.py, plus one import):
  1. a config dataclass (JSON-serialisable, defaults documented) with image_channels, image_height, image_width
     and num_classes (gans.base.check_image_fields; runners fill them from the data) and one budget field that a
     longer run raises (``epochs``, or one named by budget_field);
  2. ``build(config) -> ConditionalGenerator`` (gans.base: z [N, latent_dim], labels [N] -> [N,C,H,W] in [-1, 1]),
     untrained; gans.base.stride2_stages/stride2_base and pad_to/crop_to size a strided network for any H x W;
  3. ``train(images, config, device, rng, progress=True, session=None, precision="fp32") -> ConditionalGenerator``
     on uint8 [N,C,H,W] and labels [N]: weights in gans.training.seeded_weights(rng), batches from BatchStream,
     each step under autocast(precision) in gans.training.run_steps, applying session.hooks
     (gans.training.adversarial_step is the standard conditional D step then G step); it returns
     session.hooks.sampling_generator(generator).eval();
  4. ``register_family(name, config_class, build, train, description, ...)`` at the module's end, with
     budget_field, own_ema=True (keeps its own weight average: the recipe's EMA is off), supports_ada=False (no
     real/fake logit for ADA) and quick_budget (train_gans' quick preset; default a tenth of the budget) as needed;
  5. its import in gans/__init__.py, so that it registers whichever gans module is imported first.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Callable

from acquire.errors import UserError
from gans.base import ConditionalGenerator


def field_type_name(annotation) -> str:
    """How a config field's type reads in an error message, e.g. 'comma-separated integers'."""
    names = {bool: "true/false/1/0", int: "an integer", float: "a number", str: "a string"}
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        element = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(args[0], str(args[0]))
        count = "" if len(args) == 2 and args[1] is Ellipsis else f"{len(args)} "
        return f"{count}comma-separated {element}"
    return names.get(annotation, str(annotation))


def parse_scalar(text: str, annotation) -> object:
    """One command-line value as a bool (true/false/1/0), int, float or str; ValueError if it is none of them."""
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0"):
            raise UserError(text)
        return lowered in ("true", "1")
    if annotation in (int, float, str):
        return annotation(text.strip() if annotation is not str else text)
    raise UserError(text)


def format_field(value) -> str:
    """A config value as the command line writes it (the inverse of GanFamily.parse_field): 64,64,32,16 or true."""
    if isinstance(value, (tuple, list)):
        return ",".join(format_field(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class GanFamily:
    name: str
    config_class: type
    build: Callable[..., ConditionalGenerator]
    train: Callable[..., ConditionalGenerator]
    description: str = ""
    budget_field: str = "epochs"  # the config field a longer run raises; a training state continues under more
    own_ema: bool = False         # keeps its own generator average: the low-data recipe's EMA is off
    supports_ada: bool = True     # its discriminator's real/fake logits feed hooks.observe_real_logits (ADA)
    quick_budget: dict | None = None  # config changes of train_gans' quick preset (None: a tenth of the budget)

    def config_from_dict(self, values: dict):
        """The family's config from a JSON dict; unknown keys are an error, missing ones take their defaults."""
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"{self.name} config has unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return self.config_class(**values)

    def quick_changes(self) -> dict:
        """The config changes of runners.train_gans' quick preset: quick_budget, else the budget field at a tenth
        of its default (of the same type)."""
        if self.quick_budget is not None:
            return dict(self.quick_budget)
        default = getattr(self.config_class(), self.budget_field)
        return {self.budget_field: type(default)(default / 10)}

    def parse_field(self, field: str, text: str) -> object:
        """A command-line value for config field `field`, typed like the field: ints, floats, bools (true/false/1/0),
        tuples from comma-separated values; a one-line ValueError naming `name.field` and the type otherwise."""
        hints = typing.get_type_hints(self.config_class)
        if field not in hints:
            raise UserError(f"{self.name}.{field}: {self.name} has no field {field!r}; fields: {sorted(hints)}")
        annotation = hints[field]
        default = getattr(self.config_class(), field)
        expected = (f"{self.name}.{field}={text!r}: expected {field_type_name(annotation)}, "
                    f"e.g. {self.name}.{field}={format_field(default)}")
        try:
            if typing.get_origin(annotation) is not tuple:
                return parse_scalar(text, annotation)
            args = typing.get_args(annotation)
            parts = text.split(",")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(parse_scalar(part, args[0]) for part in parts)
            if len(parts) != len(args):
                raise UserError(text)
            return tuple(parse_scalar(part, arg) for part, arg in zip(parts, args))
        except ValueError:
            raise UserError(expected) from None


FAMILIES: dict[str, GanFamily] = {}


def register_family(name: str, config_class: type, build: Callable, train: Callable, description: str = "",
                    budget_field: str = "epochs", *, own_ema: bool = False, supports_ada: bool = True,
                    quick_budget: dict | None = None) -> None:
    """Add a family to the zoo (each family module calls this at import; the options are GanFamily's fields);
    budget_field and quick_budget's keys must be config fields."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    if budget_field not in fields:
        raise UserError(f"GAN family {name!r}: budget_field {budget_field!r} is not a field of {config_class.__name__}")
    if quick_budget is not None and not set(quick_budget) <= fields:
        raise UserError(f"GAN family {name!r}: quick_budget sets {sorted(set(quick_budget) - fields)}, not fields of "
                        f"{config_class.__name__}")
    FAMILIES[name] = GanFamily(name, config_class, build, train, description, budget_field, own_ema, supports_ada,
                               quick_budget)


def get_family(name: str) -> GanFamily:
    """The registered family `name` (the built-in ones register when the gans package is imported)."""
    if name not in FAMILIES:
        raise UserError(f"unknown GAN family {name!r}; available: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]

