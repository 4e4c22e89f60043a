"""gans.registry: the built-in families register on import; gans.training.seeded_weights draws initial weights from
an RNG."""

import subprocess
import sys

import torch
from torch import nn

from gans.training import seeded_weights


def test_importing_the_registry_alone_registers_every_built_in_family():
    code = "from gans.registry import FAMILIES, get_family; print(sorted(FAMILIES), get_family('pggan').name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["['dada',", "'large_dcgan',", "'pggan',", "'small_dcgan']", "pggan"]


def test_seeded_weights_seed_the_cpu_rng_with_one_draw_and_restore_it():
    torch.manual_seed(123)
    global_before = torch.get_rng_state()
    generator, twin = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    with seeded_weights(generator):
        layer = nn.Linear(4, 3)
    assert torch.equal(torch.get_rng_state(), global_before)  # the global CPU RNG is as it was
    seed = int(torch.randint(2 ** 62, (1,), generator=twin))  # the one draw, as documented
    assert torch.equal(generator.get_state(), twin.get_state())
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        assert torch.equal(layer.weight, nn.Linear(4, 3).weight)
