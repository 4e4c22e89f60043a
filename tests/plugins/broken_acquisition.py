"""Acquisition functions a user might get wrong, loaded as tests.plugins.broken_acquisition:NAME."""

import torch

from acquire.functions import acquisition

NOT_A_FUNCTION = 42


def returns_none(probs_NTK):
    """Forgets to return."""
    probs_NTK.mean()


def raises(probs_NTK):
    """Fails on its input."""
    raise RuntimeError("shapes do not line up")


def nan_scores(probs_NTK):
    """0/0 for every candidate."""
    return torch.zeros(len(probs_NTK)) / 0


@acquisition("test_float_positions", selects=True)
def float_positions(probs_NTK, k, generator, pool_size):
    """Positions as floats."""
    return torch.arange(k, dtype=torch.float32)
