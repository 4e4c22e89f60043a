"""Acquisition functions against independent numpy references, and the registry's contract."""

import re

import numpy as np
import pytest
import torch

from acquire import functions
from acquire.errors import UserError
from acquire.functions import REGISTRY, acquisition, get_acquisition, top_k_random_ties


@pytest.fixture
def probs_NTK():
    logits = torch.randn(50, 8, 10, generator=torch.Generator().manual_seed(0)) * 3
    return logits.softmax(-1)


def np_entropy(p):
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)


def reference_scores(p):
    """Gal et al. 2017's definitions, written independently with numpy loops."""
    p = p.double().numpy()
    out = {"max_entropy": [], "bald": [], "variation_ratios": [], "mean_std": []}
    for x in p:  # x: [T, K]
        mean = x.mean(0)
        out["max_entropy"].append(np_entropy(mean))
        out["bald"].append(np_entropy(mean) - np.mean([np_entropy(row) for row in x]))
        out["variation_ratios"].append(1 - mean.max())
        out["mean_std"].append(np.mean([np.std(x[:, c]) for c in range(x.shape[1])]))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("name", ["max_entropy", "bald", "variation_ratios", "mean_std"])
def test_scores_match_reference(name, probs_NTK):
    expected = reference_scores(probs_NTK)[name]
    np.testing.assert_allclose(REGISTRY[name].fn(probs_NTK).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_bald_is_zero_when_samples_agree_and_high_when_they_disagree():
    agree = torch.full((1, 4, 10), 0.1)
    disagree = torch.eye(10)[:4].unsqueeze(0)  # 4 confident, different predictions
    assert abs(functions.bald(agree).item()) < 1e-6
    assert functions.bald(disagree).item() == pytest.approx(np.log(4), rel=1e-5)
    assert functions.bald(torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])).item() == 0.0  # 0 log 0 = 0, no NaN


def test_top_k_takes_the_largest_and_breaks_ties_at_random():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.9, 0.2])
    assert set(top_k_random_ties(scores, 2, torch.Generator().manual_seed(0)).tolist()) == {1, 3}
    tied = torch.zeros(100)
    picks = {tuple(top_k_random_ties(tied, 3, torch.Generator().manual_seed(s)).tolist()) for s in range(5)}
    assert len(picks) == 5 and all(max(p) > 2 for p in picks)  # not simply the first positions


def test_random_needs_no_inference_and_returns_distinct_positions():
    random = REGISTRY["random"]
    assert not random.needs_mc
    chosen, _ = random.choose(None, pool_size=30, k=30, rng=torch.Generator().manual_seed(0))
    assert sorted(chosen.tolist()) == list(range(30))


def test_power_bald_samples_in_proportion_to_bald():
    # Two candidates with BALD 3:1 ratio; k=1: the first should win ~75% of draws.
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.9, 0.1], [0.6, 0.4]]])
    weights = functions.bald(p)
    rng = torch.Generator().manual_seed(0)
    wins = sum(functions.power_bald(p, 1, rng, 2).item() == 0 for _ in range(4000))
    assert wins / 4000 == pytest.approx((weights[0] / weights.sum()).item(), abs=0.03)
    low_temperature = [functions.power_bald(p, 1, rng, 2, temperature=0.01).item() for _ in range(50)]
    assert low_temperature == [0] * 50  # temperature -> 0 approaches top-k


def test_choose_rejects_more_than_the_pool_and_bad_outputs(probs_NTK):
    with pytest.raises(ValueError, match="pool of 50"):
        REGISTRY["bald"].choose(probs_NTK, 50, 51, torch.Generator())
    bad = functions.Acquisition("bad", lambda probs: torch.zeros(3))
    with pytest.raises(ValueError, match="one score per candidate"):
        bad.choose(probs_NTK, 50, 5, torch.Generator())


def test_decorator_registers_a_custom_function(probs_NTK):
    @acquisition("test_margin")
    def margin(p):
        top2 = p.mean(1).topk(2, -1).values
        return top2[:, 1] - top2[:, 0]
    try:
        assert get_acquisition("test_margin").fn is margin
        assert get_acquisition("test_margin").choose(probs_NTK, 50, 4, torch.Generator())[0].shape == (4,)
    finally:
        REGISTRY.pop("test_margin")


def test_module_path_and_unknown_names():
    custom = get_acquisition("tests.plugins.custom_acquisition:least_confident")
    assert custom.needs_mc and not custom.selects
    with pytest.raises(UserError, match=r"^unknown acquisition function 'nope'; registered: .*bald.*random.*\. "
                                        "A custom one is given as module:function$"):
        get_acquisition("nope")
    with pytest.raises(ValueError, match="cannot load"):
        get_acquisition("tests.plugins.custom_acquisition:missing")


def exits(probs_NTK):
    raise SystemExit(0)


@pytest.mark.parametrize("fn, returned", [
    (lambda probs: "bald", "returned str; it must return one score per candidate"),
    (lambda probs: {"scores": probs.mean((1, 2))}, "returned dict; it must return one score per candidate"),
    (lambda probs: [None] * len(probs), "returned a list that is no array of numbers"),
    (exits, "raised SystemExit: 0"),
    (lambda probs: probs.mean((1, 2)) * (1 + 1j), "returned complex scores (torch.complex64); scores must be real"),
])
def test_a_score_function_that_returns_no_scores_or_exits_is_refused_in_one_line(fn, returned, probs_NTK):
    bad = functions.Acquisition("bad", fn)
    with pytest.raises(UserError, match=f"^acquisition function 'bad' {re.escape(returned)}"):
        bad.probe(k=2, num_samples=3, num_classes=4)


def test_a_selecting_function_that_returns_a_str_or_exits_is_refused_and_ctrl_c_passes(probs_NTK):
    for fn, message in ((lambda p, k, rng, n: "0,1", "returned str; it must return k positions [k]"),
                        (lambda p, k, rng, n: exits(p), "raised SystemExit")):
        with pytest.raises(UserError, match=re.escape(message)):
            functions.Acquisition("bad", fn, selects=True).choose(probs_NTK, 50, 2, torch.Generator())

    def interrupted(probs):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        functions.Acquisition("ctrl_c", interrupted).choose(probs_NTK, 50, 2, torch.Generator())


@pytest.mark.parametrize("spec", [":", "mod:", ":fn", "a b:fn", "mod:fn:extra", "mod.:fn"])
def test_a_malformed_module_path_names_the_expected_form(spec):
    with pytest.raises(UserError, match=f"^acquisition function {re.escape(repr(spec))} is not of the form "
                                        r"'module:function' \(e.g. my_pkg.my_mod:least_confident\)"):
        get_acquisition(spec)


def test_a_name_that_is_not_a_string_is_refused():
    with pytest.raises(UserError, match=r"^an acquisition function is named by a string, got list \['bald'\]$"):
        get_acquisition(["bald"])


def test_scores_of_confident_candidates_keep_their_precision():
    """Near-certain predictions whose MC samples differ by ~1e-4: E[p²] - E[p]² in float32 loses the spread."""
    import numpy as np
    rng = torch.Generator().manual_seed(0)
    spread_NT = 1e-4 * torch.rand(50, 20, generator=rng)
    probs_NTK = torch.zeros(50, 20, 10)
    probs_NTK[..., 0] = 1 - spread_NT
    probs_NTK[..., 1] = spread_NT
    p = probs_NTK.numpy().astype(np.float64)
    expected_std = np.sqrt(((p - p.mean(1, keepdims=True)) ** 2).mean(1)).mean(-1)
    np.testing.assert_allclose(REGISTRY["mean_std"].fn(probs_NTK).numpy(), expected_std, rtol=1e-9)
    xlogy = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)
    mean = p.mean(1)
    expected_bald = -(np.where(mean > 0, mean * np.log(np.where(mean > 0, mean, 1)), 0)).sum(-1) + xlogy.sum(-1).mean(1)
    np.testing.assert_allclose(REGISTRY["bald"].fn(probs_NTK).numpy(), expected_bald, rtol=1e-6, atol=1e-15)
    assert REGISTRY["bald"].fn(probs_NTK).dtype == torch.float64


def test_variation_ratios_in_both_forms_on_a_hand_made_pool():
    """Gal et al. 2017 print 1 - max_y of the MC-mean; their code counts argmax votes. Candidate 1's samples
    tie 0.4/0.4: the vote goes to the lower class (numpy's argmax), giving votes 0,0,1,1 (not 1,1,2,1)."""
    probs_NTK = torch.tensor([
        [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6]],     # votes 0,0,1,2
        [[0.4, 0.4, 0.2], [0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [0.3, 0.4, 0.3]],     # votes 0,0,1,1
        [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.5, 0.5, 0.0]],  # votes 0,0,0,0
    ])
    np.testing.assert_allclose(REGISTRY["variation_ratios"].fn(probs_NTK).numpy(), [0.6, 0.6, 0.2], atol=1e-7)
    mode = REGISTRY["variation_ratios_mode"].fn(probs_NTK)
    assert mode.dtype == torch.float64 and mode.tolist() == [0.5, 0.5, 0.0]


def test_variation_ratios_mode_matches_numpy_votes(probs_NTK):
    p = probs_NTK.numpy()
    votes = np.array([np.bincount(np.argmax(x, axis=-1), minlength=p.shape[-1]) for x in p])
    expected = 1 - votes.max(-1) / p.shape[1]
    np.testing.assert_array_equal(functions.variation_ratios_mode(probs_NTK).numpy(), expected)
