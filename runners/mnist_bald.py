"""Active GAN data augmentation on MNIST or any labelled image data (`python -m runners.mnist_bald --help`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from acquire.api import Experiment
from acquire.errors import UserError
from acquire.builtins import MODELS
from acquire.data import ImageSet, dataset_name, load_split, resolve_data_dir
from acquire.functions import get_acquisition
from acquire.device import resolve_device
from acquire.loop import ActiveLearningRun, ExperimentConfig
from acquire.mc_dropout import MASKINGS
from acquire.round_context import QUOTA_TARGETS
from acquire.training import TrainConfig
from analysis.curves import final_table, format_table, read_curves
from acquire.pool import REAL_SOURCE, CandidatePool
from acquire.validate import check_positive_int
from acquire.rundir import CONFIG_FILE
from gans.registry import get_family
from gans.sources import DEFAULT_GAN_DIR, gan_weights_digests
from studies.paper_grid.pools import DEFAULT_PER_CLASS, generated_source
from runners.cli import (add_executor_flags, add_precision_flag, add_run_flags, comma_list, config_for_out_dir,
                         resume_hint, run_guarded)

DESCRIPTION = """\
Nielsen & Okoniewski's protocol (Algorithm 1): each round an MC-dropout CNN scores the candidate
pool, the top --per-round candidates join the training set, a fresh CNN (Gal et al. 2017) is
trained on it for --epochs epochs and its balanced accuracy on the full test set is logged. Any
--data-dir works (MNIST by default): the CNN is built for the data's [C,H,W] images and K classes. Every (source, acquisition, repeat) arm runs in lockstep (or, with --executor ray, one Ray
task per arm, as many at once as cores allow). Writes OUT/config.json,
OUT/rounds.csv (one row per arm and round, flushed as it goes), OUT/state/ (each arm's acquisitions,
small enough to commit) and OUT/curves.png. A killed run, or a finished one given more rounds, continues
with `--resume --out OUT [--rounds N]`, here or on a clone of OUT on another machine, and gives the rows
an uninterrupted run gives (exactly so on the same hardware, torch version and thread count).
"""

EPILOG = """\
presets (explicit flags override them):
  paper  50 rounds x 10 images, 100 epochs, 4 repeats, T=20, whole pool scored (the default)
  quick  8 rounds, 20 epochs, 2 repeats, 2,000-candidate scoring subset: a few minutes on 2 CPU cores
         for raw alone, 10 min for raw and the 4 GAN sources (20 arms)

examples:
  python -m runners.mnist_bald --preset quick --out runs/quick
  python -m runners.mnist_bald --acquisitions random,bald,power_bald --repeats 2 --out runs/mine
  python -m runners.mnist_bald --acquisitions bald,my_pkg.my_mod:my_fn   # a custom function
  python -m runners.mnist_bald --resume --out runs/quick --rounds 12     # continue a run, 4 more rounds
  python -m runners.mnist_bald --executor ray --out runs/grid            # arms in parallel, one thread each
"""

PRESETS = {
    "paper": {},
    "quick": {"rounds": 8, "epochs": 20, "repeats": 2, "pool_subset": 2000},
}
RESUMABLE_PROVENANCE = ("gan_dir",)  # a resume may read the GAN checkpoints from elsewhere (their digests must match)
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "dense_l2_c")
CONFIG_FLAGS = ("sources", "acquisitions", "rounds", "per_round", "initial", "repeats", "mc_samples", "pool_subset",
                "seed", "generated_per_class", "precision", "model", "mc_masks", "quota_target", "gate_threshold",
                "gate_judge_epochs", "real_only")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.mnist_bald", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sources", type=comma_list,
                   help="comma-separated source sets, one candidate pool each: 'raw' = the 60,000 real MNIST "
                        "training images; a GAN name (small_dcgan, large_dcgan, pggan, dada) = the raw pool joined "
                        "by that GAN's samples, logged as raw+NAME. A GAN not yet trained is refused with the "
                        "command that trains it (python -m runners.train_gans) (default: raw)")
    p.add_argument("--gan-dir", type=Path,
                   help=f"where runners.train_gans saved the GAN checkpoints (default: {DEFAULT_GAN_DIR}; with "
                        "--resume the saved one)")
    p.add_argument("--generated-per-class", type=int,
                   help=f"GAN samples per digit added to the pool (default: {DEFAULT_PER_CLASS}, i.e. 60,000 "
                        "generated beside 60,000 real, so random acquisition draws both equally)")
    p.add_argument("--acquisitions", type=comma_list,
                   help="comma-separated acquisition functions: random, bald, max_entropy, variation_ratios, "
                        "variation_ratios_mode, mean_std, power_bald, batchbald, badge, coreset, or "
                        "package.module:function; quota:F takes F's picks class by class (quota:bald), gate:F "
                        "first drops generated candidates whose label both the classifier and a judge contradict "
                        "(gate:quota:bald) (default: random,bald)")
    p.add_argument("--quota-target", choices=QUOTA_TARGETS,
                   help="the class distribution quota:F follows: uniform, or training_set (the arm's training set's "
                        "before each round) (default: uniform)")
    p.add_argument("--gate-threshold", type=float,
                   help="gate:F drops a generated candidate when the classifier's MC-mean probability of its label "
                        "and the judge's are both below this (default: 0.5)")
    p.add_argument("--gate-judge-epochs", type=int,
                   help="epochs of gate:F's judge, the run's CNN trained once on the pool's real images "
                        "(default: 10)")
    p.add_argument("--real-only", action="store_const", const=True,
                   help="also train, each round, the counterfactual classifier on the arm's real images alone (same "
                        "initialisation and draws): rows gain balanced_accuracy_real_only and generated_gain, the "
                        "accuracy the generated images added; runners.compare --generated-gain gives its interval "
                        "(about doubles the training time of arms with generated sources)")
    p.add_argument("--rounds", type=int, help="acquisition rounds (default: 50)")
    p.add_argument("--per-round", type=int, help="candidates acquired per round (default: 10)")
    p.add_argument("--initial", type=int,
                   help="class-balanced real images in the training set before round 1, a multiple of 10 "
                        "(Gal et al.'s variant uses 20; default: 0, the paper's empty start)")
    p.add_argument("--model", choices=sorted(MODELS),
                   help="the CNN: gal = Gal et al.'s paper (conv 32@4x4 twice, maxpool 2, dense 128); gal_code = the "
                        "network of their published Keras code (conv 3x3, maxpool 5, dense 256); the _glorot forms "
                        "initialise as Keras did (Glorot-uniform weights, zero biases) instead of PyTorch's default "
                        "(default: gal)")
    p.add_argument("--epochs", type=int, help="training epochs of each round's fresh CNN (default: 100)")
    p.add_argument("--batch-size", type=int, help="training batch size (default: 128)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--weight-decay", type=float, help="Adam weight decay on all weights (default: 0)")
    p.add_argument("--dense-l2-c", type=float,
                   help="Gal et al.'s regulariser: loss += c/n_train * ||W||^2 of the first dense layer; their "
                        "code used c=3.5 (default: 0, off)")
    p.add_argument("--repeats", type=int, help="repeats with distinct seeds, for mean +/- std bands (default: 4)")
    p.add_argument("--mc-samples", type=int, help="MC-dropout samples T per candidate (default: 20)")
    p.add_argument("--mc-masks", choices=MASKINGS,
                   help="shared: each of the T dropout masks serves every candidate (T sampled networks); "
                        "per_image: every candidate draws its own T masks, as dropout left on at prediction does "
                        "(Gal et al.'s Keras code); the same predictive distribution, with independent Monte Carlo "
                        "errors across candidates (default: shared)")
    p.add_argument("--pool-subset", type=int,
                   help="score a random subset of this many pool candidates per round; 0 scores the whole pool "
                        "(default: 0; Gal et al.'s code used 2,000)")
    add_precision_flag(p)
    add_run_flags(p, out=Path("runs/mnist_bald"), presets=PRESETS,
                  seed_help="base seed; every arm/round draw is derived from it (default: 0)",
                  resume_help="continue the run saved in --out with its saved settings; only --rounds (and where "
                              "data, GANs and device are found) may be given. A custom acquisition (module:function) "
                              "is imported only if named again with --acquisitions (config.json's list)")
    add_executor_flags(p)
    return p


def config_from_args(args: argparse.Namespace, saved: ExperimentConfig | None = None,
                     dataset: Callable[[], str] | None = None) -> ExperimentConfig:
    """The run's config, built once: the preset's values (or, resuming, the saved config), overridden by every flag
    given explicitly. GAN sources record how their pool was built (sources_provenance: the checkpoints' digests,
    samples per class, the directory); a resume then refuses any change but --rounds and where files are found.
    dataset() names the data for figures (called once the sources are known; default: the saved name)."""
    if saved is None:
        values = {"sources": ["raw"], "acquisitions": ["random", "bald"]}
        provenance = {}
    else:
        values = {k: v for k, v in saved.to_dict().items()
                  if k not in ("train", "pool_fingerprint", "test_fingerprint", "sources_provenance")}
        values.update(saved.to_dict()["train"])
        values["sources"] = [s.removeprefix(f"{REAL_SOURCE}+") for s in saved.sources]
        provenance = saved.sources_provenance
    values.update(PRESETS[args.preset or "paper"] if saved is None or args.preset else {})
    values.update({name: getattr(args, name) for name in CONFIG_FLAGS + TRAIN_FLAGS if getattr(args, name) is not None})
    per_class = values.pop("generated_per_class", None)
    gans = [s for s in values["sources"] if s != REAL_SOURCE]
    for name in gans:
        get_family(name)  # unknown names fail here, with the list of families
    values["sources"] = [s if s == REAL_SOURCE else f"{REAL_SOURCE}+{s}" for s in values["sources"]]
    if gans:
        gan_dir = args.gan_dir or Path(provenance.get("gan_dir") or DEFAULT_GAN_DIR)
        per_class = per_class if per_class is not None else provenance.get("generated_per_class", DEFAULT_PER_CLASS)
        check_positive_int("--generated-per-class", per_class)
        provenance = {"gan_dir": str(gan_dir), "gan_checkpoints": gan_weights_digests(gan_dir, gans),
                      "generated_per_class": per_class}
    elif per_class is not None:
        raise UserError("--generated-per-class needs a GAN source set (--sources raw,NAME); 'raw' alone has none")
    values["model"] = model_path(values.get("model", "gal"))
    values["dataset"] = dataset() if dataset else values.get("dataset", "")
    train = TrainConfig(**{k: values.pop(k) for k in TRAIN_FLAGS if k in values})
    config = ExperimentConfig(train=train, sources_provenance=provenance, **values)
    for name in config.acquisitions:
        get_acquisition(name)  # unknown or broken names fail here, before any work
    return config


def data_name(data_dir: Path | None) -> str:
    """The data set's name for figures: the data directory's name, an .npz file's stem (--data-dir as given,
    unchecked: loading it reports what is missing)."""
    return dataset_name(Path(data_dir).expanduser() if data_dir is not None else resolve_data_dir(None))


def model_path(name: str) -> str:
    """'module:function' of a --model name, as the loop records it in config.json (a saved config already holds
    the path)."""
    return MODELS[name][0] if name in MODELS else name


def model_for(config: ExperimentConfig, train: ImageSet):
    """The factory (seed, device) -> classifier that config.model names, built for the training data's K classes
    (largest label + 1) and [C,H,W] images."""
    factories = dict(MODELS.values())
    if config.model not in factories:
        raise UserError(f"this run's config names the model {config.model!r}, which runners.mnist_bald does not "
                         f"build ({', '.join(factories)}); continue it with the Python API "
                         "(acquire.api.Experiment with its model factory)")
    return partial(factories[config.model], num_classes=int(train.labels_N.max()) + 1,
                   image_shape=tuple(train.images_NCHW.shape[1:]))


def build_pools(config: ExperimentConfig, raw: ImageSet, device) -> dict[str, CandidatePool]:
    """One candidate pool per source set on `device`: 'raw' (the training split `raw`), or 'raw+GAN' (the real
    images joined by the GAN's samples)."""
    pools, provenance = {}, config.sources_provenance
    for source_set in config.sources:
        parts = {REAL_SOURCE: raw}
        for gan in source_set.split("+")[1:]:
            parts[gan] = generated_source(gan, Path(provenance["gan_dir"]), provenance["generated_per_class"],
                                          config.seed, device, image_shape=tuple(raw.images_NCHW.shape[1:]),
                                          num_classes=int(raw.labels_N.max()) + 1)
        pools[source_set] = CandidatePool(parts, device)
    return pools


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), resume_hint("completed rounds", "runners.mnist_bald", args.out))


def run(args: argparse.Namespace) -> int:
    trusted = tuple(args.acquisitions or ())
    config = config_for_out_dir(args, lambda: config_from_args(
        args, ExperimentConfig.load(args.out / CONFIG_FILE, trusted) if args.resume else None,
        dataset=partial(data_name, args.data_dir)))
    device = resolve_device(args.device)
    ray_options = ray_options_from_args(args, device) if args.executor == "ray" else None
    train = load_split("train", args.data_dir)
    pools = build_pools(config, train, device)
    with Experiment(config, pools, load_split("test", args.data_dir), args.out, model=model_for(config, train),
                    device=device, resume=args.resume, resumable_provenance=RESUMABLE_PROVENANCE) as experiment:
        where = f"Ray tasks of {args.threads_per_task} thread(s)" if ray_options else str(device)
        print(f"{len(experiment.loop.arms)} arms x {config.rounds} rounds on {where}; writing {experiment.csv_path}",
              file=sys.stderr)
        if ray_options is None:
            experiment.run(progress=not args.no_progress)
        else:
            worker = partial(open_worker, args.out.resolve(), resolve_data_dir(args.data_dir), str(device),
                             tuple(config.custom_acquisitions))
            experiment.run_on_ray(worker, ray_options, progress=not args.no_progress)
    print(format_table(final_table(read_curves([experiment.csv_path]))))
    print(f"wrote {experiment.csv_path} and {experiment.plot_path}")
    return 0


def ray_options_from_args(args: argparse.Namespace, device):
    """RayOptions from the executor flags (Ray's absence is refused here, before any work)."""
    from acquire.ray_executor import RayOptions, check_reachable, import_ray
    import_ray()
    check_reachable(args.ray_address)
    gpus = args.gpus_per_task if args.gpus_per_task is not None else (0.25 if device.type == "cuda" else 0.0)
    return RayOptions(address=args.ray_address, num_cpus=args.ray_cpus, threads_per_task=args.threads_per_task,
                      gpus_per_task=gpus)


def open_worker(out: Path, data_dir: Path, device: str, trusted: tuple[str, ...], arms: list[str]) -> ActiveLearningRun:
    """(In a Ray task.) The run saved in `out`, opened as a worker for `arms`, its pools rebuilt from data_dir and
    the GAN checkpoints its config names; `trusted`: the custom acquisitions its caller was given (nothing else
    named by config.json is imported)."""
    config = ExperimentConfig.load(out / CONFIG_FILE, trusted)
    device = resolve_device(device)
    train = load_split("train", data_dir)
    return ActiveLearningRun(config, build_pools(config, train, device), load_split("test", data_dir), out,
                             device, resume=True, model_factory=model_for(config, train), worker_arms=arms,
                             resumable_provenance=RESUMABLE_PROVENANCE)


if __name__ == "__main__":
    sys.exit(main())
