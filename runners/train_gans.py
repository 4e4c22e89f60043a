"""Train the class-conditional GAN zoo on real MNIST (`python -m runners.train_gans --help`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from acquire.data import ImageSet, class_balanced_indices, load_split
from acquire.device import resolve_device
from acquire.files import write_csv
from acquire.seeding import derive_seed
from gans.checkpoint import CheckpointError, data_digest, load_checkpoint, read_sidecar, save_checkpoint
from gans.grid import save_sample_grid
from gans.quality import QualityConfig, balanced_labels, measure, train_reference_classifier
from gans.registry import get_family
from gans.sources import DEFAULT_GAN_DIR, checkpoint_path
from runners.cli import run_guarded

ALL_GANS = ["small_dcgan", "large_dcgan", "pggan", "dada"]
QUALITY_COLUMNS = ["gan", "generator_parameters", "train_images", "train_seconds", "label_agreement",
                   "frechet_distance", "cas_accuracy", "cas_balanced_accuracy"]

DESCRIPTION = """\
Trains class-conditional GANs on real MNIST and caches them as OUT/<gan>.pt (a plain state_dict)
plus OUT/<gan>.json (family, config, data digest, version). A GAN already trained with the same
config, seed and training data is skipped. For each GAN it writes OUT/<gan>_grid.png (10 samples
per digit, one row per class), then OUT/quality.csv: label agreement under a CNN trained on all
real training images, Frechet distance in that CNN's 128-d feature space to the real test set,
and the classification accuracy score (a CNN trained on 10,000 generated images, tested on real).
"""

EPILOG = """\
presets (--set overrides them):
  full   each family's default budget (its config docstring gives the CPU times): ~1 h on 2 CPU cores
  quick  small_dcgan 0.4 epochs, large_dcgan 0.3, dada 0.2, pggan 4,000 images per phase, quality on 300
         samples per digit: 9 min on 2 idle CPU cores, enough to try the pipeline, not for results

examples:
  python -m runners.train_gans --preset quick
  python -m runners.train_gans --gans small_dcgan,large_dcgan,pggan,dada
  python -m runners.train_gans --gans dada --train-size 500 --out runs/gans-500
  python -m runners.train_gans --gans pggan --set pggan.images_per_stage=200000
  python -m runners.train_gans --quality-only
"""


PRESETS = {
    "full": {},
    "quick": {"small_dcgan": {"epochs": 0.4}, "large_dcgan": {"epochs": 0.3}, "dada": {"epochs": 0.2},
              "pggan": {"images_per_stage": 4000}},
}
QUICK_QUALITY_SAMPLES = 300


def parse_override(text: str) -> tuple[str, str, str]:
    family, _, rest = text.partition(".")
    field, _, value = rest.partition("=")
    if not (family and field and value):
        raise argparse.ArgumentTypeError(f"--set expects FAMILY.FIELD=VALUE, got {text!r}")
    return family, field, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runners.train_gans", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gans", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=ALL_GANS,
                   help=f"comma-separated GAN families (default: {','.join(ALL_GANS)})")
    p.add_argument("--preset", choices=sorted(PRESETS), default="full",
                   help="training budgets: full (each config's default) or quick (see below; default: full)")
    p.add_argument("--train-size", type=int, default=0,
                   help="train on a class-balanced subset of this many real images, a multiple of 10 "
                        "(the low-data regime; default: 0 = all 60,000)")
    p.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                   metavar="FAMILY.FIELD=VALUE", help="override one config field, e.g. small_dcgan.epochs=2")
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument("--force", action="store_true", help="retrain even if an up-to-date checkpoint exists")
    p.add_argument("--no-quality", action="store_true", help="skip the quality report")
    p.add_argument("--quality-only", action="store_true", help="only (re)write the quality report")
    p.add_argument("--quality-samples", type=int,
                   help=f"generated images per class for the quality report (default: "
                        f"{QualityConfig.samples_per_class}; quick preset: {QUICK_QUALITY_SAMPLES})")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--data-dir", type=Path, help="MNIST directory (default: $GAN_ACQUIRE_DATA or the cache)")
    p.add_argument("--out", type=Path, default=DEFAULT_GAN_DIR, help="checkpoint directory (default: %(default)s)")
    return p


def family_config(name: str, overrides: list[tuple[str, str, str]], preset: str = "full"):
    """The family's default config, with the preset's budget and then the --set overrides applied
    (values cast to the field's type)."""
    family = get_family(name)
    config = family.config_class()
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = dict(PRESETS[preset].get(name, {}))
    for target, field, value in overrides:
        if target != name:
            continue
        if field not in fields:
            raise ValueError(f"--set {target}.{field}: {name} has no field {field!r}; fields: {sorted(fields)}")
        changes[field] = type(getattr(config, field))(value)
    return dataclasses.replace(config, **changes)


def training_subset(train: ImageSet, size: int, seed: int) -> ImageSet:
    """All of `train`, or a class-balanced random subset of `size` images."""
    if size == 0:
        return train
    return train.subset(class_balanced_indices(train.labels_N, size, torch.Generator().manual_seed(
        derive_seed(seed, "gan-train"))))


def is_up_to_date(path: Path, config, data: ImageSet, seed: int) -> bool:
    if not path.exists():
        return False
    try:
        meta = read_sidecar(path)
    except CheckpointError:
        return False
    as_saved = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples come back from JSON as lists
    return (meta.get("config") == as_saved and meta.get("seed") == seed
            and meta.get("training_data_sha256") == data_digest(data))


def train_one(name: str, config, data: ImageSet, args, device) -> None:
    path = checkpoint_path(args.out, name)
    if not args.force and is_up_to_date(path, config, data, args.seed):
        print(f"{name}: up to date ({path}); --force retrains", file=sys.stderr)
        return
    print(f"{name}: training on {len(data)} real images on {device} with {config}", file=sys.stderr)
    start = time.perf_counter()
    generator = get_family(name).train(data, config, device, torch.Generator().manual_seed(derive_seed(args.seed, name)))
    seconds = time.perf_counter() - start
    save_checkpoint(path, name, generator, config, data,
                    extra={"seed": args.seed, "train_seconds": round(seconds, 1), "device": str(device),
                           "generator_parameters": sum(p.numel() for p in generator.parameters())})
    save_sample_grid(generator.cpu(), args.out / f"{name}_grid.png", f"{name}: one row per digit")
    print(f"{name}: {seconds / 60:.1f} min; wrote {path} and {name}_grid.png", file=sys.stderr)


def quality_report(names: list[str], train: ImageSet, test: ImageSet, args, device) -> Path:
    config = QualityConfig(samples_per_class=args.quality_samples, seed=args.seed)
    print("quality: training the reference CNN on all real training images ...", file=sys.stderr)
    reference = train_reference_classifier(train, config, device)
    labels = balanced_labels(config.samples_per_class)
    real_index = class_balanced_indices(train.labels_N, 10 * config.samples_per_class,
                                        torch.Generator().manual_seed(derive_seed(args.seed, "quality-real")))
    rows = [{"gan": "real (training images)", "generator_parameters": 0, "train_images": len(train),
             "train_seconds": 0.0, **measure(train.subset(real_index), reference, test, config, device)}]
    for name in names:
        generator, meta = load_checkpoint(checkpoint_path(args.out, name), name, device)
        samples = ImageSet(generator.sample(labels.to(device), torch.Generator(device).manual_seed(
            derive_seed(args.seed, name, "quality"))), labels.to(device))
        rows.append({"gan": name, "generator_parameters": meta.get("generator_parameters"),
                     "train_images": meta.get("training_images"), "train_seconds": meta.get("train_seconds"),
                     **measure(samples, reference, test, config, device)})
        print(f"quality: {name}: " + ", ".join(f"{k}={rows[-1][k]:.4g}" for k in QUALITY_COLUMNS[4:]), file=sys.stderr)
    return write_csv(args.out / "quality.csv", QUALITY_COLUMNS, rows)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), "GANs finished so far are saved and will be skipped next time")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    if args.quality_samples is None:
        args.quality_samples = QUICK_QUALITY_SAMPLES if args.preset == "quick" else QualityConfig.samples_per_class
    configs = {name: family_config(name, args.overrides, args.preset) for name in args.gans}
    train, test = load_split("train", args.data_dir), load_split("test", args.data_dir)
    data = training_subset(train, args.train_size, args.seed)
    if not args.quality_only:
        for name, config in configs.items():
            train_one(name, config, data, args, device)
    if not args.no_quality:
        print(f"wrote {quality_report(args.gans, train, test, args, device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
