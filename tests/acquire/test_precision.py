"""Precision: fp32 computes exactly what the scorer computed before precision existed; bf16 scores close to fp32 on
the same trained model, trains to a finite loss, and is refused with one line where bfloat16 is unsupported."""

import pytest
import torch
import torch.nn.functional as F

from acquire.functions import bald
from acquire.inference import to_float
from acquire.mc_dropout import draw_head_masks, mc_dropout_probs, mc_probs
from acquire.networks import new_model
from acquire.precision import autocast, autocast_dtype, check_precision, supports_bf16
from acquire.training import TrainConfig, evaluate, train_classifier

needs_bf16 = pytest.mark.skipif(not supports_bf16("cpu"), reason="this CPU cannot compute bfloat16 matrix products")


@pytest.fixture(scope="module")
def trained(tiny_train):
    """Gal's CNN trained briefly on 400 real digits (confident, non-uniform predictions), and 300 other images."""
    model = train_classifier(new_model(0, "cpu"), tiny_train.images_NCHW[:300], tiny_train.labels_N[:300],
                             TrainConfig(epochs=4, batch_size=32), torch.Generator().manual_seed(0))
    return model, tiny_train.images_NCHW[300:]


def scorer_before_precision(model, images_NCHW, masks, chunk_size):
    """The fused scorer as it was before precision and streaming existed (reference for bit-identity)."""
    features_TD, hidden_TH = masks
    T, H, K = len(features_TD), model.fc1.out_features, model.fc2.out_features
    w1_DTH = (model.fc1.weight.unsqueeze(0) * features_TD.unsqueeze(1)).reshape(T * H, -1).t().contiguous()
    b1_TH = model.fc1.bias.repeat(T)
    w2_THK = (model.fc2.weight.unsqueeze(0) * hidden_TH.unsqueeze(1)).transpose(1, 2).contiguous()
    probs_NTK = torch.empty(len(images_NCHW), T, K)
    hidden = None
    with torch.no_grad():
        for start in range(0, len(images_NCHW), chunk_size):
            features_BD = model.trunk(to_float(images_NCHW[start:start + chunk_size]))
            B = features_BD.shape[0]
            if hidden is None or hidden.shape[0] != B:
                hidden = torch.empty(B, T * H)
            torch.addmm(b1_TH, features_BD, w1_DTH, out=hidden)
            hidden.relu_()
            logits_TBK = torch.baddbmm(model.fc2.bias, hidden.view(B, T, H).transpose(0, 1), w2_THK)
            probs_NTK[start:start + B] = logits_TBK.softmax(-1).transpose(0, 1)
    return probs_NTK


def test_fp32_scoring_is_bit_identical_to_the_scorer_before_precision(trained, one_thread):
    model, images = trained
    masks = draw_head_masks(model, 9, torch.Generator().manual_seed(4))
    for chunk_size in (32, 256):  # several chunks with a ragged last one, and one chunk
        assert torch.equal(mc_dropout_probs(model, images, masks, chunk_size),
                           scorer_before_precision(model, images, masks, chunk_size))


@needs_bf16
def test_bf16_probabilities_are_close_to_fp32(trained, one_thread):
    """bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.2% per weight, feature and mask product);
    GEMMs accumulate in float32, so a logit of size ~10 moves by ~0.01-0.05 and a probability by at most ~1%
    (results/README.md has the measured differences). The test allows 0.03 per probability and 1e-3 on
    average, and BALD must keep its ranking (correlation > 0.999)."""
    model, images = trained
    masks = draw_head_masks(model, 20, torch.Generator().manual_seed(5))
    fp32 = mc_dropout_probs(model, images, masks)
    bf16 = mc_dropout_probs(model, images, masks, precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)  # really computed in bfloat16
    torch.testing.assert_close(bf16.sum(-1), torch.ones(len(images), 20))  # softmax in float32
    difference = (bf16 - fp32).abs()
    assert difference.max() < 0.03 and difference.mean() < 1e-3
    assert torch.corrcoef(torch.stack([bald(fp32), bald(bf16)]))[0, 1] > 0.999


@needs_bf16
def test_bf16_generic_scoring_softmaxes_in_float32(trained, one_thread):
    model, images = trained
    sequential = torch.nn.Sequential(model.conv1, torch.nn.ReLU(), model.conv2, torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                     torch.nn.Flatten(), torch.nn.Dropout(0.25), model.fc1, torch.nn.ReLU(),
                                     torch.nn.Dropout(0.5), model.fc2)
    generic = mc_probs(sequential, images[:40], 6, torch.Generator().manual_seed(2), precision="bf16")
    fused = mc_probs(model, images[:40], 6, torch.Generator().manual_seed(2))
    assert generic.dtype == torch.float32
    assert (generic - fused).abs().max() < 0.03


@needs_bf16
def test_a_bf16_training_step_gives_a_finite_loss_and_float32_gradients(tiny_train, one_thread):
    model = new_model(0, "cpu")
    x, y = to_float(tiny_train.images_NCHW[:32]), tiny_train.labels_N[:32]
    with autocast("bf16", "cpu"):
        logits = model(x, rng=torch.Generator().manual_seed(0))
        loss = F.cross_entropy(logits, y)
    loss.backward()
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in model.parameters())
    with autocast("bf16", "cpu"):
        trained = train_classifier(new_model(0, "cpu"), tiny_train.images_NCHW[:64], tiny_train.labels_N[:64],
                                   TrainConfig(epochs=1, batch_size=16), torch.Generator().manual_seed(0))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in trained.parameters())


@needs_bf16
def test_a_training_loop_in_one_bf16_autocast_block_learns_like_fp32(trained, tiny_train, one_thread):
    """torch's autocast cache would keep each weight's first bfloat16 copy for the whole block: a loop trained inside
    one block (as the runners train) would compute every step with the initial weights."""
    fp32, held_out = trained
    model = new_model(0, "cpu")
    with autocast("bf16", "cpu"):
        train_classifier(model, tiny_train.images_NCHW[:300], tiny_train.labels_N[:300],
                         TrainConfig(epochs=4, batch_size=32), torch.Generator().manual_seed(0))
    labels = tiny_train.labels_N[300:]
    accuracies = [evaluate(m, held_out, labels)["accuracy"] for m in (fp32, model)]
    assert accuracies[1] > 0.6 and abs(accuracies[0] - accuracies[1]) < 0.1


def test_unsupported_precisions_are_one_line_errors(monkeypatch):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        check_precision("fp16", "cpu")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(ValueError, match=r"^precision bf16 is not supported on cuda .*; use fp32$"):
        check_precision("bf16", "cuda")
    assert not supports_bf16("cuda")
    check_precision("fp32", "cuda")  # fp32 needs no check


def test_the_matrix_product_dtype_follows_the_autocast_block():
    assert autocast_dtype("cpu") == torch.float32 and autocast_dtype("meta") == torch.float32
    with autocast("bf16", "cpu"):
        assert autocast_dtype("cpu") == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert autocast_dtype("cpu") == torch.float32
