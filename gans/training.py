"""The one GAN training loop every family runs, and what it is made of.

`run_steps` drives a family's step function: it resumes from a saved training state, counts the images shown,
saves states periodically and on SIGINT/SIGTERM (`TrainingSession`), runs the quality schedule (on_budget) and
shows a progress bar. A family hands it its stateful parts (networks, optimisers, loop position) and one step.

Hooks for data-efficient training: `TrainingHooks.augment(images_NCHW)` is applied by a family to everything its
discriminator sees (real and generated, in the D and G steps; identity by default), and
`TrainingHooks.after_generator_step()` runs after each generator update (e.g. an EMA of the generator).
`adversarial_step` is the standard conditional D-step-then-G-step with these hooks (gans.dcgan's step).

Also here: `seeded_weights` (initial weights drawn from the run's RNG), `train_images_to_float` and `BatchStream`.
An interrupted and resumed run ends with weights bit-identical to an uninterrupted one on the same machine and
thread count.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.seeding import seeded_global_rng
from gans.base import ConditionalGenerator


@contextmanager
def seeded_weights(rng: torch.Generator) -> Iterator[None]:
    """A block in which the global CPU RNG is seeded by one draw from `rng` (an int in [0, 2**62), drawn on
    its device), so that networks built in it draw their initial weights from `rng`'s stream; the CPU RNG
    is restored on exit and no CUDA RNG is touched (weights are drawn on the CPU)."""
    with seeded_global_rng(int(torch.randint(2 ** 62, (1,), generator=rng, device=rng.device))):
        yield


def train_images_to_float(images: ImageSet, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Real uint8 images -> float [N,C,H,W] in [-1, 1] and labels [N], on `device` (the GAN input range)."""
    return images.images_NCHW.to(device).float().div(127.5).sub(1), images.labels_N.to(device)


class BatchStream:
    """Index batches [B] (B = min(batch_size, n)) from successive shuffles of range(n), drawn from `rng` on
    its device; each shuffle's incomplete tail is skipped so that every batch has B images (batch norm, per-class
    statistics). state_dict() holds the current shuffle and position, so a resumed run draws the same batches."""

    def __init__(self, n: int, batch_size: int, rng: torch.Generator):
        self.n, self.size, self.rng = n, min(batch_size, n), rng
        self.order, self.start = None, n

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> torch.Tensor:
        """The next batch of indices [B], on the rng's device."""
        if self.start + self.size > self.n:
            self.order = torch.randperm(self.n, generator=self.rng, device=self.rng.device)
            self.start = 0
        self.start += self.size
        return self.order[self.start - self.size:self.start]

    def state_dict(self) -> dict:
        """{'order': the current shuffle [n] on the CPU (empty before the first), 'start': next batch's offset}."""
        order = self.order if self.order is not None else torch.empty(0, dtype=torch.long)
        return {"order": order.cpu(), "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a state_dict() (its shuffle moved to the rng's device)."""
        self.order = state["order"].to(self.rng.device) if len(state["order"]) else None
        self.start = state["start"]


def batch_indices(n: int, batch_size: int, steps: int, rng: torch.Generator) -> Iterator[torch.Tensor]:
    """Yields `steps` index batches [B] of a BatchStream (B = min(batch_size, n))."""
    stream = BatchStream(n, batch_size, rng)
    for _ in range(steps):
        yield next(stream)


class Stateful(Protocol):
    """Anything with state_dict() / load_state_dict(): modules, optimisers, BatchStream."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def no_augmentation(images_NCHW: torch.Tensor) -> torch.Tensor:
    """The default TrainingHooks.augment: images unchanged."""
    return images_NCHW


def no_op() -> None:
    """The default TrainingHooks.after_generator_step."""


def ignore_logits(real_logits_N: torch.Tensor) -> None:
    """The default TrainingHooks.observe_real_logits."""


def ignore_generator(generator: torch.nn.Module) -> None:
    """The default TrainingHooks.bind."""


def same_generator(generator: torch.nn.Module) -> torch.nn.Module:
    """The default TrainingHooks.sampling_generator: the trained generator itself."""
    return generator


@dataclass(frozen=True)
class TrainingHooks:
    """Where a data-efficient recipe plugs into every family's step (defaults change nothing).

    augment              [N,C,H,W] -> [N,C,H,W], differentiable: applied to every batch the discriminator sees
                         (real and generated, in the discriminator and the generator steps)
    observe_real_logits  D's logits [N] on the step's (augmented) real batch (an adaptive augmentation's signal)
    after_generator_step called after each generator update (e.g. an EMA of the generator's weights)
    bind                 called by run_steps with the family's generator before any step or restore
    sampling_generator   generator -> the network to measure, checkpoint and sample (e.g. its weight average)
    parts                the hooks' own stateful objects (an EMA network, an adaptive probability), saved and
                         restored with the family's parts as "hook_<name>", so a resumed run continues them; bind
                         may add to it
    """

    augment: Callable[[torch.Tensor], torch.Tensor] = no_augmentation
    after_generator_step: Callable[[], None] = no_op
    parts: dict[str, Stateful] = field(default_factory=dict)
    observe_real_logits: Callable[[torch.Tensor], None] = ignore_logits
    bind: Callable[[torch.nn.Module], None] = ignore_generator
    sampling_generator: Callable[[torch.nn.Module], torch.nn.Module] = same_generator


def adversarial_step(generator: ConditionalGenerator, discriminator: nn.Module, optimiser_g: torch.optim.Optimizer,
                     optimiser_d: torch.optim.Optimizer, real_NCHW: torch.Tensor, labels_N: torch.Tensor,
                     z_NZ: torch.Tensor, hooks: TrainingHooks = TrainingHooks()) -> tuple[torch.Tensor, torch.Tensor]:
    """One D step then one G step with the non-saturating loss (BCE with logits); returns (d_loss, g_loss), detached.

    generator(z [N,Z], labels [N]) -> fakes [N,C,H,W]; discriminator(images [N,C,H,W], labels [N]) -> real/fake
    logits [N]; fakes are conditioned on the real batch's labels [N]. hooks.augment is applied to every batch D
    sees, hooks.observe_real_logits gets D's logits on the real batch, hooks.after_generator_step runs after G's
    update. Any family with such a conditional D can make this its step (gans.dcgan does).
    """
    fake_NCHW = generator(z_NZ, labels_N)
    real_logits = discriminator(hooks.augment(real_NCHW), labels_N)
    hooks.observe_real_logits(real_logits.detach())
    fake_logits = discriminator(hooks.augment(fake_NCHW.detach()), labels_N)
    d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    optimiser_d.zero_grad(set_to_none=True)
    d_loss.backward()
    optimiser_d.step()
    discriminator.requires_grad_(False)  # the G step needs no D weight gradients
    fooled_logits = discriminator(hooks.augment(fake_NCHW), labels_N)
    discriminator.requires_grad_(True)
    g_loss = F.binary_cross_entropy_with_logits(fooled_logits, torch.ones_like(fooled_logits))
    optimiser_g.zero_grad(set_to_none=True)
    g_loss.backward()
    optimiser_g.step()
    hooks.after_generator_step()
    return d_loss.detach(), g_loss.detach()


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
    hooks             the TrainingHooks a family's steps apply (augmentation, after-generator-step)
    every_images      on_budget(generator, session) runs each time the images shown cross a multiple of every_images,
    on_budget         on the family's current generator (a ConditionalGenerator), after the state at that step is
                      saved; signals interrupt it at once, and a run resumed from that state calls it again
    steps, images_shown, train_seconds (not counting on_budget), sessions, last_budget (images shown when
    on_budget last ran): the run's progress over all its sessions, kept current.
    """

    resume_from: dict | None = None
    save: Callable[[dict], None] | None = None
    save_every_seconds: float = 600.0
    hooks: TrainingHooks = field(default_factory=TrainingHooks)
    stop_after_steps: int | None = None
    every_images: int = 0
    on_budget: Callable[[ConditionalGenerator, TrainingSession], None] | None = None
    steps: int = 0
    images_shown: int = 0
    train_seconds: float = 0.0
    sessions: int = 1
    last_budget: int = 0

    @contextmanager
    def running(self, parts: Callable[[], dict[str, Stateful]], rng: torch.Generator, total_steps: int,
                current_generator: Callable[[], ConditionalGenerator]) -> Iterator[TrainingSession]:
        """The block of a family's step loop (which calls step_done() after every step).

        parts() names the family's stateful objects (networks, optimisers, loop position); entering restores them,
        `rng`'s state and the progress from resume_from, and refuses (ValueError) a state already past
        total_steps; while the block runs, SIGINT and SIGTERM wait for the next step boundary (when saving); a
        block that ends normally saves its final state.
        """
        self._rng, self._parts, self._current_generator = rng, parts, current_generator
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
                "sessions": self.sessions, "last_budget": self.last_budget, "rng": self._rng.get_state(),
                "loop": {name: part.state_dict() for name, part in self._parts().items()}}

    def _restore(self, state: dict) -> None:
        """The inverse of _snapshot, counting a new session."""
        self._rng.set_state(state["rng"])
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


def run_steps(session: TrainingSession, parts: Callable[[], dict[str, Stateful]], rng: torch.Generator,
              total_steps: int, step: Callable[[int], tuple[int, dict[str, torch.Tensor]]],
              current_generator: Callable[[], ConditionalGenerator], desc: str, progress: bool = True,
              log_every: int = 25) -> None:
    """THE training loop: steps session.steps .. total_steps-1 of a family, resumable (see TrainingSession).

    step(index) runs one training step and returns (real images it showed, {name: detached loss}); parts() names
    the family's stateful objects; current_generator() is the generator the quality schedule measures.
    """
    hooks = session.hooks
    hooks.bind(current_generator())
    hook_parts = {f"hook_{name}": part for name, part in hooks.parts.items()}
    with session.running(lambda: {**parts(), **hook_parts}, rng, total_steps,
                         lambda: hooks.sampling_generator(current_generator())):
        bar = tqdm(total=total_steps, initial=session.steps, desc=desc, unit="step", disable=not progress)
        for index in range(session.steps, total_steps):
            images, losses = step(index)
            session.step_done(images)
            bar.update()
            if progress and index % log_every == 0:
                bar.set_postfix({name: f"{loss.item():.3f}" for name, loss in losses.items()}, refresh=False)
        bar.close()
