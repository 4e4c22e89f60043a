"""The shared training loop's hooks: augment sees every batch the discriminator sees, after_generator_step runs after
each generator update, and the hooks' own state is saved and restored with the training state."""

import pytest
import torch

from acquire.data import ImageSet
from gans.registry import get_family
from gans.training import TrainingHooks, TrainingSession
from tests.gans.test_shapes import TINY

pytestmark = pytest.mark.usefixtures("one_thread")

# D batches per step (each [B,...] or the DADA's joint [2B,...]) and generator updates per step, per family
D_INPUTS_PER_STEP = {"small_dcgan": 3, "large_dcgan": 3, "dada": 1 + 2 * 2, "pggan": 3}
G_UPDATES_PER_STEP = {"small_dcgan": 1, "large_dcgan": 1, "dada": 2, "pggan": 1}


class Counter:
    """A stateful hook part: counts generator updates."""

    def __init__(self):
        self.count = 0

    def state_dict(self) -> dict:
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = state["count"]


def tiny_data() -> ImageSet:
    images = torch.randint(0, 256, (16, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return ImageSet(images, torch.arange(4).repeat(4))


def train(family: str, session: TrainingSession, **changes):
    spec = get_family(family)
    config = spec.config_class(**{**TINY[family], **changes}, num_classes=4)
    if family == "pggan":
        config = spec.config_class(**{**TINY[family], "channels": (4,) * 4, "batch_sizes": (4,) * 4}, num_classes=4)
    return spec.train(tiny_data(), config, "cpu", torch.Generator().manual_seed(0), progress=False, session=session)


@pytest.mark.parametrize("family", sorted(TINY))
def test_hooks_see_every_discriminator_input_and_every_generator_update(family):
    seen, counter = [], Counter()

    def augment(images_NCHW):
        seen.append(tuple(images_NCHW.shape[1:]))
        return images_NCHW

    def after_generator_step():
        counter.count += 1

    saved = []
    session = TrainingSession(save=saved.append,
                              hooks=TrainingHooks(augment, after_generator_step, {"counter": counter}))
    train(family, session)
    assert len(seen) == D_INPUTS_PER_STEP[family] * session.steps
    assert counter.count == G_UPDATES_PER_STEP[family] * session.steps
    assert saved[-1]["loop"]["hook_counter"] == {"count": counter.count}


def test_hook_state_is_restored_on_resume():
    counter = Counter()
    hooks = TrainingHooks(after_generator_step=lambda: setattr(counter, "count", counter.count + 1),
                          parts={"counter": counter})
    saved = []
    with pytest.raises(KeyboardInterrupt):
        train("small_dcgan", TrainingSession(save=saved.append, stop_after_steps=1, hooks=hooks), epochs=1.5)
    counter.count = 0  # a fresh process
    train("small_dcgan", TrainingSession(resume_from=saved[-1], save=saved.append, hooks=hooks), epochs=1.5)
    assert counter.count == saved[-1]["steps"] == 3


def test_default_hooks_add_nothing_to_the_training_state():
    saved = []
    train("small_dcgan", TrainingSession(save=saved.append))
    assert set(saved[-1]["loop"]) == {"generator", "discriminator", "optimiser_g", "optimiser_d", "batches"}
