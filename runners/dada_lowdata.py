"""DADA in the extremely low data regime on MNIST (`python -m runners.dada_lowdata --help`).

Zhang et al.'s section 4 protocol: n real training images per class (class-balanced, a different subset per
repeat), the training options below, accuracy on the full real test set. One sweep cell = (method, n, repeat),
one row of OUT/results.csv; the figure OUT/accuracy.png is accuracy against n, one line per method (their Fig. 2).

Methods (all train the same network, `gans.dada.DadaDiscriminator`, with the phase-II loss and decision rule of
`gans.dada_phase_two`, for the same number of steps):
  C                      a fresh classifier on the real images alone (L_data only)
  C_augmented            the same, each real batch randomly rotated, shifted and zoomed (acquire.augment)
  DADA                   phase I (gans.dada) on the real images, then phase II: the phase-I classifier trained
                         on real + frozen-G samples (L_data + L_gen)
  DADA_augmented         DADA with the real images of phase II augmented as in C_augmented
  GAN_samples            a fresh classifier on real + the same frozen phase-I G's samples: a conditional GAN's
                         samples as plain extra labelled data (the paper's GAN baselines, sec. 4)
  GAN_samples_augmented  the same with C_augmented's augmentation of the real images (as the paper's baselines)
The paper's other baselines (per-class vanilla GANs, Improved GAN's k+1 loss) are not in this package; the
GAN_samples pair keeps DADA's generator and removes its adversarially trained classifier, so the difference to
DADA is what phase I's classifier adds beyond its samples.

Why DADA's discriminator for every method: DADA's phase II fine-tunes it, so it must be DADA's classifier, and
for a fair table every option gets the same network. Its class probability p_real(y|x) + p_fake(y|x) is a
softmax over k folded logits, so without generated samples it is an ordinary k-way classifier (with the same
Gaussian input noise as regulariser).

Sharing and resuming: phase I depends only on (seed, n, repeat), so DADA, DADA_augmented and the GAN_samples
methods on a subset share one phase-I run, cached as OUT/phase_one/n{n}_r{repeat}.pt (the state_dicts of G and
C with their sha256, written atomically, loaded with weights_only=True; always read back from that file, so a
resumed sweep, which skips the cached phase I, gives the same rows as an uninterrupted one). A cache file that
does not load or whose tensors no longer match their sha256 is trained again. The cache is not part of a
portable run directory (git ignores it): a clone trains phase I again. Every cell draws its randomness from
generators keyed by (seed, purpose, n, repeat): the subset and phase I do not depend on the method or on the
order of cells; phase II (a fresh classifier's init, the generated set, batches, augmentation) is keyed by the
method too. These generators are on the CPU whatever the device, so the draws are the same on any device.
"""

from __future__ import annotations

from runners.cli import stop_before_work

stop_before_work(__name__)  # before the slow imports below

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from acquire.augment import AugmentConfig  # noqa: E402
from acquire.data import ImageSet, class_balanced_indices, load_split  # noqa: E402
from acquire.device import resolve_device  # noqa: E402
from acquire.files import write_atomic  # noqa: E402
from acquire.metrics import accuracy, balanced_accuracy  # noqa: E402
from acquire.plotting import METRIC_LABELS, format_mean_std, plot_sweep, summarise_sweep  # noqa: E402
from acquire.seeding import make_generator  # noqa: E402
from acquire.sweep import Sweep, SweepSettings  # noqa: E402
from gans.dada import NUM_CLASSES, DadaConfig, DadaDiscriminator, DadaGenerator, train_phase_one  # noqa: E402
from gans.dada_phase_two import PhaseTwoConfig, new_classifier, predict, train_phase_two  # noqa: E402
from runners.cli import comma_list, config_for_out_dir, int_list, resume_hint, run_guarded  # noqa: E402


@dataclass(frozen=True)
class Method:
    """A training option: C starts from phase I or fresh; G's samples enter (eq. 7) or not; reals augmented or not."""

    from_phase_one: bool
    generated: bool
    augment: bool

    @property
    def needs_phase_one(self) -> bool:
        return self.from_phase_one or self.generated


METHODS = {
    "C": Method(from_phase_one=False, generated=False, augment=False),
    "C_augmented": Method(from_phase_one=False, generated=False, augment=True),
    "DADA": Method(from_phase_one=True, generated=True, augment=False),
    "DADA_augmented": Method(from_phase_one=True, generated=True, augment=True),
    "GAN_samples": Method(from_phase_one=False, generated=True, augment=False),
    "GAN_samples_augmented": Method(from_phase_one=False, generated=True, augment=True),
}
DEFAULT_METHODS = ["C", "C_augmented", "DADA", "DADA_augmented", "GAN_samples_augmented"]
COLUMNS = ["method", "n", "repeat", "accuracy", "balanced_accuracy", "train_images", "seconds"]
KEY_COLUMNS = ["method", "n", "repeat"]
RESUMABLE = ("sizes", "repeats", "methods", "data_dir")


@dataclass
class LowDataConfig:
    """The whole sweep. Defaults (the paper preset) take ~21 min of one CPU core.

    Measured as CPU time of one thread (OMP_NUM_THREADS=1; wall-clock time was up to twice that while other jobs
    shared the 2 cores): a phase-I iteration (one C step on 32 real + 32 generated images, two G steps) takes
    0.097 s whatever n, plus 1.6 s of set-up; a phase-II step 0.018 s on 32 real images (augmented or not) and
    0.028 s on 32 real + 32 generated; scoring the 10,000 test images 1.1 s. So both budgets are counts, not
    epochs (with 50-500 images an epoch is 2-16 iterations). Phase I: after 100 iterations on 100 images
    the samples are blobs, after 300 recognisable digits. Phase II: the same steps for every method and n
    (400 steps of 32 = 256 passes over 50 images, 26 over 500). Per (n, repeat) with the default 5 methods:
    phase I 300 x 0.097 + 1.6 = 31 s, phase II 2 x 7 s + 3 x 11 s = 48 s, scoring 6 s; a timing run of one
    n=10 pair took 106 s of CPU in all (3:14 wall under load), so 4 sizes x 3 repeats take ~21 min of CPU.
    """

    sizes: list[int] = dataclasses.field(default_factory=lambda: [5, 10, 20, 50])
    repeats: int = 3
    methods: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_METHODS))
    phase_one_iterations: int = 300
    phase_two_steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3
    generated_per_real: int = 9
    seed: int = 0
    data_dir: str | None = None  # the MNIST directory as given (None: $GAN_ACQUIRE_DATA or the cache)

    def __post_init__(self):
        if self.data_dir is not None:
            self.data_dir = str(self.data_dir)
        self.sizes, self.methods = list(dict.fromkeys(self.sizes)), list(dict.fromkeys(self.methods))
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; available: {', '.join(METHODS)}")
        if not self.methods or not self.sizes:
            raise ValueError("need at least one method and one size")
        for name, values in [("sizes", self.sizes), ("repeats", [self.repeats]),
                             ("phase_one_iterations", [self.phase_one_iterations])]:
            bad = [value for value in values if not isinstance(value, int) or value <= 0]
            if bad:
                raise ValueError(f"{name} must be positive integers, got {bad[0]!r}")
        self.phase_two()  # validates the phase-II settings

    def phase_two(self, augment: bool = False) -> PhaseTwoConfig:
        return PhaseTwoConfig(steps=self.phase_two_steps, batch_size=self.batch_size, lr=self.lr,
                              generated_per_real=self.generated_per_real,
                              augment=AugmentConfig() if augment else None)

    def phase_one(self, train_images: int) -> DadaConfig:
        """gans.dada's defaults with `epochs` set so that phase I makes exactly phase_one_iterations iterations."""
        batch = DadaConfig.batch_size
        return DadaConfig(epochs=(self.phase_one_iterations - 0.5) * batch / train_images)  # ceil() -> iterations

    def to_json(self) -> dict:
        """What config.json records: the sweep's settings, the phase-I architecture and the augmentation ranges."""
        phase_one = dataclasses.asdict(DadaConfig())
        del phase_one["epochs"]
        return {**dataclasses.asdict(self), "phase_one_network": phase_one,
                "augment": dataclasses.asdict(AugmentConfig())}


DESCRIPTION = """\
DADA (Zhang et al.) in the extremely low data regime on MNIST: for each n real images per class and
repeat, trains C, C_augmented, DADA, DADA_augmented and a GAN-samples baseline (the frozen DADA
generator's samples as extra labelled data), and scores each on the full 10,000-image real test set.
Writes OUT/config.json, OUT/results.csv (one row per method, n and repeat, flushed as it goes),
OUT/phase_one/ (the cached phase-I networks per n and repeat) and OUT/accuracy.png, then prints
mean +/- std tables. A killed sweep continues with `--resume --out OUT` (config.json supplies every other
setting, here or on a clone of OUT on another machine) and gives the rows an uninterrupted run gives.
"""

EPILOG = """\
methods:
  C                      the classifier alone on the n*10 real images
  C_augmented            C with random rotation (+/-10 deg), shift (+/-2 px) and zoom (+/-10%) of real images
  DADA                   phase I on the real images, then phase II (the phase-I classifier, real + generated)
  DADA_augmented         DADA with the real images of phase II augmented as in C_augmented
  GAN_samples            a fresh classifier on real + the frozen phase-I generator's samples
  GAN_samples_augmented  GAN_samples with the augmentation (the paper's GAN baselines use it)
  All use the same network (DADA's 2k-way classifier) and phase-II steps.

presets (explicit flags override them):
  paper  sizes 5,10,20,50, 3 repeats, 5 methods, 300 phase-I iterations, 400 phase-II steps:
         ~21 min of one CPU core (the default)
  quick  sizes 5,20, 1 repeat, 150 phase-I iterations, 200 phase-II steps: 1.2 min on 2 CPU cores

examples:
  python -m runners.dada_lowdata --preset quick --out runs/dada_quick
  python -m runners.dada_lowdata --sizes 10,50 --methods C,DADA --repeats 5
  python -m runners.dada_lowdata --out runs/dada_lowdata --resume --repeats 5   # add repeats to a sweep
"""

PRESETS = {
    "paper": {},
    "quick": {"sizes": [5, 20], "repeats": 1, "phase_one_iterations": 150, "phase_two_steps": 200},
}
SETTINGS = SweepSettings(dataclasses.asdict(LowDataConfig()), PRESETS, resumable=frozenset(RESUMABLE),
                         derived=frozenset({"phase_one_network", "augment"}), optional=frozenset({"data_dir"}))


def build_parser() -> argparse.ArgumentParser:
    defaults = LowDataConfig()
    p = argparse.ArgumentParser(prog="python -m runners.dada_lowdata", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="starting values (default: paper; with --resume the saved settings)")
    p.add_argument("--sizes", type=int_list,
                   help=f"comma-separated real images per class n (default: {','.join(map(str, defaults.sizes))})")
    p.add_argument("--methods", type=comma_list,
                   help=f"comma-separated methods, of {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)})")
    p.add_argument("--repeats", type=int,
                   help=f"repeats per (method, n), each on its own real subset (default: {defaults.repeats})")
    p.add_argument("--phase-one-iterations", type=int,
                   help=f"DADA phase-I iterations of 32 real images (default: {defaults.phase_one_iterations})")
    p.add_argument("--phase-two-steps", type=int,
                   help=f"classifier training steps, the same for every method (default: {defaults.phase_two_steps})")
    p.add_argument("--batch-size", type=int,
                   help=f"real images per classifier step, plus as many generated (default: {defaults.batch_size})")
    p.add_argument("--lr", type=float, help=f"classifier Adam learning rate (default: {defaults.lr})")
    p.add_argument("--generated-per-real", type=int,
                   help=f"generated images per real one (default: {defaults.generated_per_real}: the augmented "
                        "set is 10x the real one, as in the paper)")
    p.add_argument("--seed", type=int, help=f"base seed; every cell's draws derive from it (default: {defaults.seed})")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda (default: auto)")
    p.add_argument("--data-dir", type=Path,
                   help="directory with the four MNIST IDX .gz files (default: $GAN_ACQUIRE_DATA, else a "
                        "per-user cache filled from the public mirrors; with --resume the saved one)")
    p.add_argument("--out", type=Path, default=Path("runs/dada_lowdata"),
                   help="output directory (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep saved in --out with its saved settings, skipping finished cells; only "
                        "--sizes, --repeats and --methods (which then replace the saved ones; rows already written "
                        "are kept) and --data-dir may be given differently")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> LowDataConfig:
    """Preset values, overridden by every flag given explicitly (with --resume: the saved settings, then the
    flags given; a resume is refused if anything but sizes, repeats, methods or data_dir changed)."""
    config, saved = SETTINGS.resolve(args, lambda values: LowDataConfig(**values))
    if saved is not None:
        SETTINGS.check_resume(args, saved, config.to_json())
    return config


# ----------------------------------------------------------------------------------------- cells

def real_subset(train: ImageSet, config: LowDataConfig, n: int, repeat: int) -> ImageSet:
    """The class-balanced n-per-class real training subset of this (n, repeat), the same for every method."""
    generator = make_generator(config.seed, "subset", n, repeat)
    return train.subset(class_balanced_indices(train.labels_N, NUM_CLASSES * n, generator, NUM_CLASSES))


def state_digest(state: dict[str, dict[str, torch.Tensor]]) -> str:
    """sha256 of networks' state_dicts (network -> name -> tensor): every name, dtype, shape and byte."""
    digest = hashlib.sha256()
    for network in sorted(state):
        for name, tensor in sorted(state[network].items()):
            digest.update(f"{network}.{name}:{tensor.dtype}:{list(tensor.shape)};".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_phase_one(path: Path) -> dict[str, dict[str, torch.Tensor]] | None:
    """The cached G and C state_dicts (on the CPU), or None when `path` is missing or damaged."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        state = {"generator": saved["generator"], "classifier": saved["classifier"]}
        intact = saved["sha256"] == state_digest(state)
    except Exception as error:  # a damaged file fails in many ways (zip, unpickling, missing keys, wrong types)
        print(f"{path} is damaged ({type(error).__name__}: {error}); training phase I again", file=sys.stderr)
        return None
    if not intact:
        print(f"{path} does not match its sha256; training phase I again", file=sys.stderr)
        return None
    return state


def phase_one_networks(out_dir: Path, config: LowDataConfig, subset: ImageSet, n: int, repeat: int,
                       device) -> tuple[DadaGenerator, DadaDiscriminator]:
    """DADA phase I on this (n, repeat)'s subset, trained once and cached in out_dir/phase_one; (G, C) in eval mode
    on `device`, always as read back from the cache."""
    path = out_dir / "phase_one" / f"n{n}_r{repeat}.pt"
    dada_config = config.phase_one(len(subset))
    state = load_phase_one(path)
    if state is None:
        gen, disc = train_phase_one(subset, dada_config, device, make_generator(config.seed, "phase_one", n, repeat),
                                    progress=False)
        state = {"generator": gen.state_dict(), "classifier": disc.state_dict()}
        write_atomic(path, lambda tmp: torch.save({**state, "sha256": state_digest(state)}, tmp))
        state = torch.load(path, map_location="cpu", weights_only=True)  # as a resumed sweep will read it
    gen = DadaGenerator(dada_config).to(device)
    disc = DadaDiscriminator(dada_config).to(device, memory_format=torch.channels_last)
    gen.load_state_dict(state["generator"])
    disc.load_state_dict(state["classifier"])
    return gen.eval(), disc.eval()


def train_cell(cell: dict, config: LowDataConfig, train: ImageSet, out_dir: Path, device) -> DadaDiscriminator:
    """One method trained on one (n, repeat) subset: the classifier C on `device`, in eval mode."""
    name, n, repeat = cell["method"], cell["n"], cell["repeat"]
    method = METHODS[name]
    subset = real_subset(train, config, n, repeat)
    generator = make_generator(config.seed, "phase_two", name, n, repeat)
    augmenter = None
    if method.needs_phase_one:
        gen, disc = phase_one_networks(out_dir, config, subset, n, repeat, device)
        augmenter = gen if method.generated else None
    if method.from_phase_one:
        classifier = disc
    else:
        classifier = new_classifier(config.phase_one(len(subset)), subset, generator, device)
    return train_phase_two(classifier, subset, augmenter, config.phase_two(method.augment), generator, progress=False)


def measure_cell(cell: dict, config: LowDataConfig, train: ImageSet, test: ImageSet, out_dir: Path, device) -> dict:
    """Train one method on one (n, repeat) subset and score it on the test set (already on `device`)."""
    start = time.perf_counter()
    classifier = train_cell(cell, config, train, out_dir, device)
    predicted_N = predict(classifier, test.images_NCHW).cpu()  # .cpu() waits for the device: the time is right
    test_labels_N = test.labels_N.cpu()
    return {"accuracy": accuracy(predicted_N, test_labels_N),
            "balanced_accuracy": balanced_accuracy(predicted_N, test_labels_N),
            "train_images": NUM_CLASSES * cell["n"], "seconds": round(time.perf_counter() - start, 2)}


# ----------------------------------------------------------------------------------------- report

def format_table(df: pd.DataFrame, metric: str) -> str:
    """mean ± std (percent, over repeats) of `metric`: one row per method, one column per n."""
    summary = summarise_sweep(df, x="n", line="method", metric=metric)
    summary["cell"] = [format_mean_std(*cell) for cell in zip(summary["mean"], summary["std"], summary["n_repeats"])]
    table = summary.pivot(index="method", columns="n", values="cell").fillna("")
    order = [m for m in METHODS if m in table.index]
    table = table.loc[order]
    table.columns = [f"n={n}" for n in table.columns]
    repeats = summary.groupby("method")["n_repeats"].max().loc[order]
    return f"{METRIC_LABELS[metric]} (%), mean ± std over repeats\n" + table.assign(runs=repeats).to_string()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), resume_hint("finished cells", "runners.dada_lowdata", args.out))


def run(args: argparse.Namespace) -> int:
    config = config_for_out_dir(args, lambda: config_from_args(args), kind="sweep")
    device = resolve_device(args.device)
    data_dir = None if config.data_dir is None else Path(config.data_dir)
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    smallest_class, largest = int(train.labels_N.bincount(minlength=NUM_CLASSES).min()), max(config.sizes)
    if largest > smallest_class:
        raise ValueError(f"--sizes: n = {largest} needs {largest} images of every class; the training split has "
                         f"only {smallest_class} of its rarest class")
    test = test.to(device)
    cells = [{"method": method, "n": n, "repeat": repeat}
             for n in config.sizes for repeat in range(config.repeats) for method in config.methods]
    with Sweep(args.out, config.to_json(), COLUMNS, KEY_COLUMNS, args.resume, SETTINGS.resumable) as sweep:
        print(f"{len(sweep.pending(cells))} of {len(cells)} cells to run on {device}; writing {sweep.csv_path}",
              file=sys.stderr)
        csv_path = sweep.run(cells, lambda cell: measure_cell(cell, config, train, test, args.out, device),
                             progress=not args.no_progress)
    df = pd.read_csv(csv_path)
    plot_path = plot_sweep(df, args.out / "accuracy.png", x="n", line="method", metric="accuracy", log_x=True,
                           xlabel="real training images per class (n)",
                           title="MNIST, low data: DADA vs. baselines (full test set)")
    print(format_table(df, "accuracy"))
    print(format_table(df, "balanced_accuracy"))
    print(f"wrote {csv_path} and {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
