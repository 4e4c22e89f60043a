import pytest
import torch
from torch import nn

from acquire.errors import UserError
from gans.ema import GeneratorEMA


def network(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_ema_equals_a_hand_computed_average():
    generator = network(0)
    ema = GeneratorEMA(generator, ema_kimg=0.1, rampup=0)
    start = generator[0].weight.detach().clone()
    history = [start]
    for step in range(3):
        with torch.no_grad():
            for parameter in generator.parameters():
                parameter.add_(step + 1.0)
        generator[1].running_mean.fill_(step)
        ema.update(generator, batch_size=50)
        history.append(generator[0].weight.detach().clone())
    beta = 0.5 ** (50 / 100)
    expected = start
    for current in history[1:]:
        expected = beta * expected + (1 - beta) * current
    assert torch.allclose(ema.module[0].weight, expected, atol=1e-6)
    assert torch.equal(ema.module[1].running_mean, torch.full((4,), 2.0))  # buffers copied, not averaged
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_rampup_copies_at_the_start_and_shortens_the_half_life_early():
    generator = network(1)
    ema = GeneratorEMA(generator, ema_kimg=10.0, rampup=0.05)
    with torch.no_grad():
        generator[0].weight.add_(1.0)
    ema.update(generator, batch_size=64)  # no images seen yet: the average is the generator
    assert torch.equal(ema.module[0].weight, generator[0].weight)
    assert ema.beta(64) == pytest.approx(0.5 ** (64 / (64 * 0.05)))
    ema.images_seen = 10 ** 7
    assert ema.beta(64) == pytest.approx(0.5 ** (64 / 10_000))


def test_state_dict_resumes_identically(tmp_path):
    generator = network(2)
    a = GeneratorEMA(generator, ema_kimg=0.2)
    for _ in range(3):
        with torch.no_grad():
            generator[0].weight.mul_(1.1)
        a.update(generator, 32)
    b = GeneratorEMA(network(3), ema_kimg=5.0)
    torch.save(a.state_dict(), tmp_path / "ema.pt")
    b.load_state_dict(torch.load(tmp_path / "ema.pt", weights_only=True))
    with torch.no_grad():
        generator[0].weight.mul_(0.9)
    a.update(generator, 32)
    b.update(generator, 32)
    assert torch.equal(a.module[0].weight, b.module[0].weight) and b.images_seen == 128 and b.ema_kimg == 0.2


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="ema_kimg"):
        GeneratorEMA(network(0), ema_kimg=0)
