"""Side-by-side speed measurements (`python -m runners.bench --help`)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from acquire.batchbald import batchbald
from acquire.data import load_train_test
from acquire.device import resolve_device, synchronize
from acquire.errors import UserError
from acquire.files import write_json
from acquire.diversity import gradient_embeddings, kcenter_greedy, kmeans_pp_select
from acquire.functions import bald
from acquire.inference import last_linear_inputs, to_float
from acquire.mc_dropout import draw_head_masks, mc_dropout_probs, mc_probs, mc_scores, naive_mc_dropout_probs
from acquire.networks import GalCNN, new_model
from acquire.precision import autocast, supports_bf16
from acquire.training import TrainConfig, evaluate, train_classifier
from acquire.validate import check_int, check_positive_int
from runners.cli import add_device_and_data_flags, run_guarded

DESCRIPTION = """\
Measures, in one process and on the same images and weights:
  0. this device's matrix-product peak (GFLOP/s of a large GEMM) in float32 and bfloat16: the floor
     every other figure is also given as a fraction of;
  1. MC-dropout throughput (candidates x samples per second) of gan-acquire's fused scorer
     (trunk once per image, T masked heads as one GEMM) in float32 and bfloat16 (--precision bf16),
     against the naive scorer (T full forward passes in train-mode dropout) and, when installed,
     BaaL's MC dropout;
  1b. training throughput (images per second, batch 128, Adam) in float32 and under bfloat16 autocast;
  2. one BatchBALD selection of 10 from the candidates' MC-dropout probabilities (seconds per round);
  3. one full round of the paper's protocol at 500 training images: MC-dropout scoring of the
     whole pool, training a fresh CNN for 100 epochs, evaluating on the 10,000 test images;
  4. peak memory of BALD-scoring pools of synthetic uint8 images (--memory-sizes), streaming (scores
     chunk by chunk, O(N)) against scoring all probabilities [N, T, K], each in a fresh subprocess:
     the rise of peak resident memory (CPU: VmHWM, reset after setup) or torch.cuda.max_memory_allocated (GPU).
Prints the ratios and writes JSON to --out.  BaaL is optional: pip install --no-deps baal
structlog scikit-learn torchmetrics lightning-utilities narwhals joblib threadpoolctl cloudpickle (its full
install pulls in torchvision, which breaks the CPU torch build).
"""

BATCHBALD_K = 10


def timed(fn, device: torch.device, repeats: int = 1) -> float:
    """Best wall-clock seconds of `repeats` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak(device: torch.device, dtype: torch.dtype, size: int) -> float:
    """GFLOP/s of the best of ten size x size matrix products in `dtype` (the best: clocks and neighbours on a shared
    machine vary)."""
    a = torch.randn(size, size, device=device).to(dtype)
    return 2 * size**3 / timed(lambda: a @ a, device, repeats=10) / 1e9


def precisions(device: torch.device) -> list[str]:
    """fp32, and bf16 where this device computes in bfloat16."""
    return ["fp32", "bf16"] if supports_bf16(device) else ["fp32"]


def galcnn_flops(model: GalCNN, samples: int) -> dict[str, float]:
    """Multiply-add FLOPs (2 per MAC) of one image through the trunk, of one MC sample through the head, and of
    one fused candidate-sample (trunk shared by the T = samples heads)."""
    def conv_flops(conv, in_size):
        out = in_size - conv.kernel_size[0] + 1
        return 2 * out * out * conv.out_channels * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1], out
    c1, size = conv_flops(model.conv1, model.image_shape[1])
    c2, _ = conv_flops(model.conv2, size)
    head = 2 * (model.fc1.in_features * model.fc1.out_features + model.fc2.in_features * model.fc2.out_features)
    return {"trunk": c1 + c2, "head": head, "fused_candidate_sample": (c1 + c2) / samples + head,
            "training_image": 3 * (c1 + c2 + head)}  # forward, and a backward of about twice its cost


def bench_gemm(device: torch.device, size: int | None = None) -> dict[str, float]:
    """GFLOP/s per precision of size x size products (default 8192 on a GPU, 4096 on a CPU)."""
    size = size or (8192 if device.type == "cuda" else 4096)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    return {name: gemm_peak(device, dtypes[name], size) for name in precisions(device)}


def bench_training(train, device: torch.device, images: int, epochs: int) -> dict:
    """Images per second of train_classifier (batch 128, Adam) on `images` training images, per precision."""
    subset = train.subset(torch.arange(images, device=device))
    seconds = {}
    for precision in precisions(device):
        def fit():
            with autocast(precision, device):
                train_classifier(new_model(0, device), subset.images_NCHW, subset.labels_N,
                                 TrainConfig(epochs=epochs), torch.Generator(device).manual_seed(0))
        seconds[precision] = timed(fit, device, repeats=2)
    return {"images": images, "epochs": epochs, "seconds": seconds,
            "images_per_second": {k: images * epochs / v for k, v in seconds.items()}}


def baal_scorer(model: GalCNN, images_NCHW: torch.Tensor, samples: int, device: torch.device, batch: int):
    """A closure running BaaL's default MC dropout (MCDropoutModule + ModelWrapper.predict_on_batch), or None."""
    try:
        from baal.bayesian.dropout import MCDropoutModule
        from baal.modelwrapper import ModelWrapper, TrainingArgs
    except ImportError:
        return None
    sequential = torch.nn.Sequential(
        model.conv1, torch.nn.ReLU(), model.conv2, torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Dropout(model.conv_dropout), torch.nn.Flatten(), model.fc1, torch.nn.ReLU(),
        torch.nn.Dropout(model.dense_dropout), model.fc2)
    wrapper = ModelWrapper(MCDropoutModule(sequential), TrainingArgs(use_cuda=device.type == "cuda", batch_size=batch))

    def score():
        for start in range(0, len(images_NCHW), batch):
            wrapper.predict_on_batch(to_float(images_NCHW[start:start + batch]), iterations=samples).softmax(1)
    return score


def bench_mc_dropout(model: GalCNN, images_NCHW: torch.Tensor, samples: int, device: torch.device,
                     repeats: int) -> dict:
    masks = draw_head_masks(model, samples, torch.Generator(device).manual_seed(0))
    rng = torch.Generator(device).manual_seed(1)
    work = len(images_NCHW) * samples
    seconds = {
        "fused": timed(lambda: mc_dropout_probs(model, images_NCHW, masks), device, repeats),
        **{f"fused_{p}": timed(lambda: mc_dropout_probs(model, images_NCHW, masks, precision=p), device, repeats)
           for p in precisions(device) if p != "fp32"},
        "naive": timed(lambda: naive_mc_dropout_probs(model, images_NCHW, samples, rng=rng), device, 1),
    }
    baal = baal_scorer(model, images_NCHW, samples, device, batch=64 if device.type == "cpu" else 512)
    if baal is not None:
        seconds["baal"] = timed(baal, device, 1)
    return {"candidates": len(images_NCHW), "mc_samples": samples, "seconds": seconds,
            "samples_per_second": {k: work / v for k, v in seconds.items()},
            "speedup_fused_over": {k: v / seconds["fused"] for k, v in seconds.items() if k != "fused"}}


def bench_batchbald(probs_NTK: torch.Tensor, k: int, device: torch.device) -> dict:
    """Seconds for one greedy BatchBALD selection of k from probs_NTK [N, T, K] (after a warm-up call)."""
    def select():
        batchbald(probs_NTK, k, torch.Generator(device).manual_seed(0))
    return {"candidates": probs_NTK.shape[0], "mc_samples": probs_NTK.shape[1], "k": k,
            "seconds_per_round": timed(select, device, repeats=1)}


def bench_diversity(model: GalCNN, images_NCHW: torch.Tensor, probs_NTK: torch.Tensor,
                    labelled_NCHW: torch.Tensor, k: int, device: torch.device) -> dict:
    """Seconds per round of BADGE and core-set selection of k among the candidates images_NCHW [N,C,H,W] (features of
    the last linear layer's input, from a deterministic pass, included; core-set measured from labelled_NCHW), and
    of BALD's top-k on the same probabilities probs_NTK [N, T, K], after a warm-up call each."""
    rng = torch.Generator(device).manual_seed(0)

    def badge_round():
        features_ND = last_linear_inputs(model, images_NCHW)
        kmeans_pp_select(gradient_embeddings(features_ND, probs_NTK.mean(1)), k, rng)

    def coreset_round():
        kcenter_greedy(last_linear_inputs(model, images_NCHW), k, last_linear_inputs(model, labelled_NCHW))

    def bald_round():
        torch.topk(bald(probs_NTK), k)

    seconds = {"badge": timed(badge_round, device, 1), "coreset": timed(coreset_round, device, 1),
               "bald_topk": timed(bald_round, device, 1)}
    return {"candidates": len(images_NCHW), "labelled": len(labelled_NCHW), "k": k, "seconds_per_round": seconds}


def cpu_model() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), so bench files from different machines differ."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_round(train, test, pool_images_NCHW, samples: int, device: torch.device) -> dict:
    """One paper round at 500 training images: score the pool, train 100 epochs, evaluate."""
    model = new_model(0, device)
    start = time.perf_counter()
    mc_dropout_probs(model, pool_images_NCHW, draw_head_masks(model, samples, torch.Generator(device).manual_seed(0)))
    scored = time.perf_counter()
    train_classifier(model, train.images_NCHW, train.labels_N, TrainConfig(), torch.Generator(device).manual_seed(0))
    trained = time.perf_counter()
    accuracy = evaluate(model, test.images_NCHW, test.labels_N)["balanced_accuracy"]
    done = time.perf_counter()
    return {"pool_candidates": len(pool_images_NCHW), "train_images": len(train), "epochs": TrainConfig().epochs,
            "seconds": {"score_pool": scored - start, "train": trained - scored, "evaluate": done - trained,
                        "total": done - start},
            "balanced_accuracy_after_round": accuracy}


def vm_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: peak resident since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (the CPU memory measurement needs Linux)")


def memory_child(candidates: int, samples: int, streaming: bool, device_name: str) -> None:
    """(Run in a fresh process.) Print, as JSON, the peak memory in MiB that BALD-scoring `candidates` synthetic
    uint8 images [N,1,28,28] with T = samples adds over the process after setup and a small warm-up."""
    device = torch.device(device_name)
    images_NCHW = torch.randint(0, 256, (candidates, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator()
                                .manual_seed(0)).to(device)
    model = new_model(0, device)

    def score(images):
        rng = torch.Generator(device).manual_seed(1)
        if streaming:
            return mc_scores(model, images, samples, bald, rng)
        return bald(mc_probs(model, images, samples, rng))

    score(images_NCHW[:512])  # library initialisation and first allocations are not the scorer's
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        score(images_NCHW)
        torch.cuda.synchronize(device)
        peak_mib = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now: setup's own peak is not ours
        before = vm_kib("VmRSS")
        score(images_NCHW)
        peak_mib = (vm_kib("VmHWM") - before) / 1024
    print(json.dumps({"peak_mib": peak_mib}))


def bench_memory(sizes: list[int], samples: int, device: torch.device) -> list[dict]:
    """Per pool size, the peak memory (MiB) of BALD scoring, streaming and not, each in a fresh subprocess."""
    rows = []
    for candidates in sizes:
        row = {"candidates": candidates, "mc_samples": samples}
        for streaming in (False, True):
            code = (f"from runners.bench import memory_child; "
                    f"memory_child({candidates}, {samples}, {streaming}, {str(device)!r})")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            row["streaming_mib" if streaming else "all_probs_mib"] = json.loads(out.splitlines()[-1])["peak_mib"]
        rows.append(row)
        print(f"  {candidates:9,d} candidates: all probabilities {row['all_probs_mib']:8.1f} MiB   streaming "
              f"{row['streaming_mib']:8.1f} MiB   ([N,T,K] float32 alone: {candidates * samples * 10 * 4 / 2**20:.1f} "
              "MiB)")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runners.bench", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidates", type=int, default=10_000, help="candidates scored (default: %(default)s)")
    p.add_argument("--mc-samples", type=int, default=20, help="MC samples T (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of the fast scorer; best is kept")
    p.add_argument("--train-images", type=int, default=2560,
                   help="training images for the training-throughput measurement (default: %(default)s)")
    p.add_argument("--train-epochs", type=int, default=2, help="epochs timed there (default: %(default)s)")
    p.add_argument("--gemm-size", type=int, help="matrix size of the GEMM reference (default: 4096 on CPU, 8192 on "
                                                   "GPU)")
    p.add_argument("--skip-round", action="store_true", help="skip the full-round measurement")
    p.add_argument("--memory-sizes", default="60000",
                   help="comma-separated pool sizes for the peak-memory measurement, e.g. 60000,240000,1000000 "
                        "(1M takes minutes and ~5 GiB without streaming on CPU); 0 skips it (default: %(default)s)")
    add_device_and_data_flags(p)
    p.add_argument("--out", type=Path, default=Path("results/bench"), help="JSON directory (default: %(default)s)")
    args = p.parse_args(argv)
    return run_guarded(lambda: run(args), "nothing was written (the JSON is written at the end)")


def check_flags(args: argparse.Namespace) -> list[int]:
    """Refuse counts that cannot be measured (one-line UserError naming the flag); the --memory-sizes as ints."""
    for flag in ("candidates", "mc_samples", "repeats", "train_images", "train_epochs"):
        check_positive_int(f"--{flag.replace('_', '-')}", getattr(args, flag))
    if args.gemm_size is not None:
        check_positive_int("--gemm-size", args.gemm_size)
    try:
        sizes = [int(size) for size in args.memory_sizes.split(",")]
    except ValueError:
        raise UserError(f"--memory-sizes must be comma-separated integers, got {args.memory_sizes!r}") from None
    return [check_int("--memory-sizes", n) for n in sizes if n]


def run(args: argparse.Namespace) -> int:
    memory_sizes = check_flags(args)
    device = resolve_device(args.device)
    train, test, _ = load_train_test(args.data_dir)
    train, test = train.to(device), test.to(device)
    if args.candidates > len(train):
        raise UserError(f"--candidates must be in 1..{len(train)} (the training images), got {args.candidates}")
    model = new_model(0, device)
    report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu": cpu_model(),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    print(f"GEMM peak on {device} ...", file=sys.stderr)
    peak = report["gemm_gflops"] = bench_gemm(device, args.gemm_size)
    print("  GEMM peak " + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in peak.items())
          + ("" if "bf16" in peak else "   (no bfloat16 on this device)"))
    flops = report["flops"] = galcnn_flops(model, args.mc_samples)
    print(f"MC dropout: {args.candidates} candidates x T={args.mc_samples} on {device} ...", file=sys.stderr)
    mc = bench_mc_dropout(model, train.images_NCHW[:args.candidates], args.mc_samples, device, args.repeats)
    report["mc_dropout"] = mc
    mc["fraction_of_gemm_peak"] = {}
    for name, rate in mc["samples_per_second"].items():
        ratio = "" if name == "fused" else (f"   {1 / mc['speedup_fused_over'][name]:.2f}x fused fp32"
                                            if name.startswith("fused") else
                                            f"   fused is {mc['speedup_fused_over'][name]:.1f}x faster")
        floor = peak["bf16" if name.endswith("bf16") else "fp32"]
        per_sample = flops["fused_candidate_sample"] if name.startswith("fused") else (
            flops["trunk"] + flops["head"])  # naive and BaaL run the whole network per sample
        fraction = mc["fraction_of_gemm_peak"][name] = rate * per_sample / 1e9 / floor
        print(f"  {name:10s} {rate:12,.0f} candidate-samples/s  {fraction:6.1%} of the "
              f"{'bf16' if name.endswith('bf16') else 'fp32'} GEMM peak{ratio}")
    if "baal" not in mc["seconds"]:
        print("  baal       not installed (optional; see --help)")
    print(f"training: {args.train_images} images x {args.train_epochs} epochs per precision ...", file=sys.stderr)
    training = report["training"] = bench_training(train, device, min(args.train_images, len(train)),
                                                   args.train_epochs)
    training["fraction_of_gemm_peak"] = {k: v * flops["training_image"] / 1e9 / peak[k]
                                         for k, v in training["images_per_second"].items()}
    for name, rate in training["images_per_second"].items():
        versus = "" if name == "fp32" else f"   {rate / training['images_per_second']['fp32']:.2f}x fp32"
        print(f"  train {name}  {rate:9,.0f} images/s  {training['fraction_of_gemm_peak'][name]:6.1%} of the {name} "
              f"GEMM peak{versus}")
    k = min(BATCHBALD_K, args.candidates)
    print(f"BatchBALD: k={k} of {args.candidates} candidates x T={args.mc_samples} ...", file=sys.stderr)
    probs_NTK = mc_dropout_probs(model, train.images_NCHW[:args.candidates],
                                 draw_head_masks(model, args.mc_samples, torch.Generator(device).manual_seed(0)))
    report["batchbald"] = bench_batchbald(probs_NTK, k, device)
    print(f"  batchbald {report['batchbald']['seconds_per_round']:.1f} s per round")
    print(f"BADGE and core-set: k={k} of {args.candidates} candidates, 500 labelled ...", file=sys.stderr)
    diversity = report["diversity"] = bench_diversity(model, train.images_NCHW[:args.candidates], probs_NTK,
                                                      train.images_NCHW[-500:], k, device)
    fused = mc["seconds"]["fused"]
    for name, seconds in diversity["seconds_per_round"].items():
        print(f"  {name:9s} {seconds:8.3f} s per round   {seconds / fused:5.2f}x the MC-dropout pass over the same "
              f"candidates ({fused:.2f} s)")
    if not args.skip_round:
        print("one paper round at 500 training images (whole 60,000 pool scored) ...", file=sys.stderr)
        round_report = bench_round(train.subset(torch.arange(500, device=device)), test, train.images_NCHW,
                                   args.mc_samples, device)
        report["paper_round"] = round_report
        print("  " + ", ".join(f"{k} {v:.1f}s" for k, v in round_report["seconds"].items()))
    if memory_sizes:
        print(f"peak memory of BALD scoring, T={args.mc_samples}, synthetic images ...", file=sys.stderr)
        report["scoring_memory_mib"] = bench_memory(memory_sizes, args.mc_samples, device)
    path = write_json(args.out / f"bench-{device.type}.json", report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
