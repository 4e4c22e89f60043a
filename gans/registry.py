"""The GAN zoo's one interface: a registry from family name to its config, generator builder and trainer.

Every family provides
  * a config dataclass (architecture and training budget, JSON-serialisable, defaults documented) with one
    budget field (``budget_field``: ``epochs``, or PGGAN's ``final_images``) that a longer run raises;
  * ``build(config) -> ConditionalGenerator`` (an untrained generator of that architecture);
  * ``train(images, config, device, generator, progress=True, session=None, precision="fp32")
    -> ConditionalGenerator``, its training steps under ``acquire.precision.autocast(precision, device)``.

Training is resumable through a `TrainingSession`: train() saves a training state (networks, optimisers, the
torch.Generator's state, the loop position) periodically and when interrupted, and a later call given that state
continues the same step stream, also under a larger budget. An interrupted and resumed run ends with weights
bit-identical to an uninterrupted one on the same machine and thread count.

What the family modules share besides: `seeded_weights` (initial weights drawn from the run's generator),
`train_images_to_float` and `BatchStream`. The built-in families register when the gans package is imported.
"""

from __future__ import annotations

import copy
import dataclasses
import signal
import sys
import threading
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from acquire.errors import UserError
from acquire.data import ImageSet
from acquire.seeding import seeded_cpu_rng


class ConditionalGenerator(nn.Module):
    """A class-conditional generator: forward(z [N, latent_dim], labels [N]) -> images [N,1,28,28] in [-1, 1]."""

    latent_dim: int
    num_classes: int = 10

    @torch.no_grad()
    def sample(self, labels_N: torch.Tensor, generator: torch.Generator | None = None,
               batch_size: int = 1024) -> torch.Tensor:
        """uint8 images [N,1,28,28] on this module's device, conditioned on labels [N], quantised like real MNIST.

        Meant not to depend on the device or the thread count: z [N, latent_dim] is drawn from a CPU generator
        (the global CPU RNG when None) and mapped by a temporary float64 copy of the network, whose rounding
        differences (~1e-16) practically never cross a quantisation step (float32's ~1e-7 would flip thousands
        of pixels in a 60,000-image pool). Measured: CPU thread counts agree; small_dcgan's 60,000-image pool
        was the same bytes on an H100 as on the CPU, DADA's was not (cause not found), so a pool fingerprint
        is checked on resume.
        """
        if generator is not None and generator.device.type != "cpu":
            raise UserError(f"sample() draws z on the CPU so that samples do not depend on the device; pass a CPU "
                             f"torch.Generator, not one on {generator.device}")
        device = next(self.parameters()).device
        network = copy.deepcopy(self).double().eval()
        labels_N = labels_N.to(device)
        out = torch.empty(len(labels_N), 1, 28, 28, dtype=torch.uint8, device=device)
        for start in range(0, len(labels_N), batch_size):
            labels_B = labels_N[start:start + batch_size]
            z_BZ = torch.randn(len(labels_B), self.latent_dim, generator=generator, device="cpu")
            images = network(z_BZ.to(device, torch.float64), labels_B)
            out[start:start + len(labels_B)] = images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        return out


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

    def config_from_dict(self, values: dict):
        """The family's config from a JSON dict; unknown keys are an error, missing ones take their defaults."""
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"{self.name} config has unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return self.config_class(**values)

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
                    budget_field: str = "epochs") -> None:
    """Add a family to the zoo (each family module calls this at import); budget_field must be a config field."""
    if budget_field not in {f.name for f in dataclasses.fields(config_class)}:
        raise UserError(f"GAN family {name!r}: budget_field {budget_field!r} is not a field of {config_class.__name__}")
    FAMILIES[name] = GanFamily(name, config_class, build, train, description, budget_field)


def get_family(name: str) -> GanFamily:
    """The registered family `name` (the built-in ones register when the gans package is imported)."""
    if name not in FAMILIES:
        raise UserError(f"unknown GAN family {name!r}; available: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


@contextmanager
def seeded_weights(generator: torch.Generator) -> Iterator[None]:
    """A block in which the global CPU RNG is seeded by one draw from `generator` (an int in [0, 2**62), drawn on
    its device), so that networks built in it draw their initial weights from `generator`'s stream; the CPU RNG
    is restored on exit and no CUDA RNG is touched (weights are drawn on the CPU)."""
    with seeded_cpu_rng(int(torch.randint(2 ** 62, (1,), generator=generator, device=generator.device))):
        yield


def train_images_to_float(images: ImageSet, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real uint8 images -> float [N,1,28,28] in [-1, 1] and labels [N], on `device` (the GAN input range)."""
    return images.images_NCHW.to(device).float().div(127.5).sub(1), images.labels_N.to(device)


class BatchStream:
    """Index batches [B] (B = min(batch_size, n)) from successive shuffles of range(n), drawn from `generator` on
    its device; each shuffle's incomplete tail is skipped so that every batch has B images (batch norm, per-class
    statistics). state_dict() holds the current shuffle and position, so a resumed run draws the same batches."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.size, self.generator = n, min(batch_size, n), generator
        self.order, self.start = None, n

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> torch.Tensor:
        """The next batch of indices [B], on the generator's device."""
        if self.start + self.size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator, device=self.generator.device)
            self.start = 0
        self.start += self.size
        return self.order[self.start - self.size:self.start]

    def state_dict(self) -> dict:
        """{'order': the current shuffle [n] on the CPU (empty before the first), 'start': next batch's offset}."""
        order = self.order if self.order is not None else torch.empty(0, dtype=torch.long)
        return {"order": order.cpu(), "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a state_dict() (its shuffle moved to the generator's device)."""
        self.order = state["order"].to(self.generator.device) if len(state["order"]) else None
        self.start = state["start"]


def batch_indices(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yields `steps` index batches [B] of a BatchStream (B = min(batch_size, n))."""
    stream = BatchStream(n, batch_size, generator)
    for _ in range(steps):
        yield next(stream)


class Stateful(Protocol):
    """Anything with state_dict() / load_state_dict(): modules, optimisers, BatchStream."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass(eq=False)
class TrainingSession:
    """One session of a resumable training run, handed to a family's train(); every field is optional.

    resume_from       a training state that `save` wrote in an earlier session of the same run (same config up to
                      a larger budget, same seed and data): training continues from it, and ends bit-identical to
                      an uninterrupted run on the same machine and thread count
    save              persists a training state (a dict of tensors, numbers, strings, lists and dicts): called every
                      save_every_seconds, at the end, at stop_after_steps, and on SIGINT/SIGTERM, which are handled
                      at the next step boundary (save, then KeyboardInterrupt; a second signal stops at once)
    stop_after_steps  stop like an interrupt (save, then KeyboardInterrupt) once this many steps are done in all
    every_images      on_budget(generator, session) runs each time the images shown cross a multiple of every_images,
    on_budget         on the family's current generator (a ConditionalGenerator), after the state at that step is
                      saved; signals interrupt it at once, and a run resumed from that state calls it again
    steps, images_shown, train_seconds (not counting on_budget), sessions, last_budget (images shown when
    on_budget last ran): the run's progress over all its sessions, kept current.
    """

    resume_from: dict | None = None
    save: Callable[[dict], None] | None = None
    save_every_seconds: float = 600.0
    stop_after_steps: int | None = None
    every_images: int = 0
    on_budget: Callable[[ConditionalGenerator, TrainingSession], None] | None = None
    steps: int = 0
    images_shown: int = 0
    train_seconds: float = 0.0
    sessions: int = 1
    last_budget: int = 0

    @contextmanager
    def running(self, parts: Callable[[], dict[str, Stateful]], generator: torch.Generator, total_steps: int,
                current_generator: Callable[[], ConditionalGenerator]) -> Iterator[TrainingSession]:
        """The block of a family's step loop (which calls step_done() after every step).

        parts() names the family's stateful objects (networks, optimisers, loop position); entering restores them,
        `generator`'s state and the progress from resume_from, and refuses (ValueError) a state already past
        total_steps; while the block runs, SIGINT and SIGTERM wait for the next step boundary (when saving); a
        block that ends normally saves its final state.
        """
        self._generator, self._parts, self._current_generator = generator, parts, current_generator
        if self.resume_from is not None:
            self._restore(self.resume_from)
            if self.steps > total_steps:
                raise UserError(f"the saved training state is {self.steps} steps in, past the {total_steps} steps "
                                 "this budget asks for: raise the budget or train from scratch")
        self._signalled, self._deferring, self._saved_steps = False, True, self.steps
        self._session_start = self._last_save = time.monotonic()
        self._seconds_before, self._budget_seconds = self.train_seconds, 0.0
        handle = self.save is not None and threading.current_thread() is threading.main_thread()
        signals = (signal.SIGINT, signal.SIGTERM) if handle else ()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        try:
            self._run_budget_if_due()  # a measurement an earlier session was interrupted in
            yield self
            if self.steps != self._saved_steps:
                self._save()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def step_done(self, images: int) -> None:
        """Count one finished step that showed `images` real images; then save, stop or call on_budget as due."""
        self.steps += 1
        self.images_shown += images
        self.train_seconds = self._seconds_before + time.monotonic() - self._session_start - self._budget_seconds
        stopping = self._signalled or (self.stop_after_steps is not None and self.steps >= self.stop_after_steps)
        if stopping or self._budget_due() or time.monotonic() - self._last_save >= self.save_every_seconds:
            self._save()
        if stopping or self._signalled:
            raise KeyboardInterrupt
        self._run_budget_if_due()

    def _snapshot(self) -> dict:
        """The training state now: progress, the RNG state (a uint8 tensor) and every part's state_dict."""
        return {"steps": self.steps, "images_shown": self.images_shown, "train_seconds": self.train_seconds,
                "sessions": self.sessions, "last_budget": self.last_budget, "rng": self._generator.get_state(),
                "loop": {name: part.state_dict() for name, part in self._parts().items()}}

    def _restore(self, state: dict) -> None:
        """The inverse of _snapshot, counting a new session."""
        self._generator.set_state(state["rng"])
        for name, part in self._parts().items():
            part.load_state_dict(state["loop"][name])
        self.steps, self.images_shown = state["steps"], state["images_shown"]
        self.train_seconds, self.last_budget = state["train_seconds"], state["last_budget"]
        self.sessions = state["sessions"] + 1

    def _save(self) -> None:
        """Hand the current state to `save` (if any) and restart the save clock."""
        if self.save is not None:
            self.save(self._snapshot())
        self._last_save, self._saved_steps = time.monotonic(), self.steps

    def _budget_due(self) -> bool:
        """Whether the images shown crossed a multiple of every_images since on_budget last ran."""
        return (self.on_budget is not None and self.every_images > 0
                and self.images_shown // self.every_images > self.last_budget // self.every_images)

    def _run_budget_if_due(self) -> None:
        """Call on_budget if due, with signals interrupting at once and its time not counted as training."""
        if not self._budget_due():
            return
        start, self._deferring = time.monotonic(), False
        try:
            self.on_budget(self._current_generator(), self)
        finally:
            self._deferring = True
            self._budget_seconds += time.monotonic() - start
        self.last_budget = self.images_shown

    def _on_signal(self, signum, frame) -> None:
        """SIGINT/SIGTERM handler: the first one (between steps) asks for a save and stop; others interrupt now."""
        if not self._deferring or self._signalled:
            raise KeyboardInterrupt
        self._signalled = True
        print(f"\n{signal.Signals(signum).name}: saving the training state after this step (again to stop at once)",
              file=sys.stderr)
