"""Train the class-conditional GAN zoo on the labelled images of --data-dir (`python -m runners.train_gans --help`).

Training is resumable: each GAN's training state lives in OUT/<gan>.train.pt (gans.checkpoint), so a killed run,
or a longer budget, continues from it when the same command is run again.
"""

from __future__ import annotations

import argparse
import sys

from acquire.errors import UserError
from acquire.data import ImageSet, load_train_test
from acquire.device import resolve_device
from acquire.precision import check_precision
from acquire.rundir import RunDir
from acquire.seeding import derive_seed
from acquire.validate import check_float, check_int
from gans.checkpoint import training_state_path
from gans.grid import save_sample_grid
from gans.quality import Judge, QualityConfig
from gans.fit import fit_generator
from gans.recipes import LowDataRecipe
from gans.registry import FAMILIES, GanFamily, format_field, get_family
from gans.report import BudgetLog, quality_report
from gans.subset import labelled_subset, subset_record, write_subset_record
from gans.sources import ALL_GANS, DEFAULT_GAN_DIR, checkpoint_path
from runners.cli import add_precision_flag, add_run_flags, run_guarded

DESCRIPTION = """\
Trains class-conditional GANs on the labelled training images of --data-dir (default: MNIST), each
built for the data's image shape [C,H,W] and number of classes K, and caches them as OUT/<gan>.pt (a
plain state_dict) plus OUT/<gan>.json (family, config with the shape and K, data digest, version,
seed, precision, and the budget trained: images_shown, train_steps, train_seconds summed over
sessions). A GAN already trained with the same config, seed, precision and training data, whose .pt
matches the sha256 its sidecar records, is skipped. For each GAN it writes OUT/<gan>_grid.png (10
samples per class, one row per class), then OUT/quality.csv: label agreement under a CNN trained on
all real training images, Frechet distance in that CNN's 128-d feature space to the real test set,
and the classification accuracy score (a CNN trained on generated images, tested on real), with the
images shown in training of each checkpoint; and memorisation (gans.memorisation): the share of samples
nearer to one of the GAN's own training images (the --train-size subset, else the whole split) than 95% of
held-out real test images are, against 5% for fresh real data, with OUT/<gan>_memorisation.png.
"""

QUICK_QUALITY_SAMPLES = 300
PRESETS = ("full", "quick")  # quick: each family's registered quick budget (gans.registry.GanFamily.quick_changes)


PRESETS_HELP = """\
presets (--set overrides them):
  full   each family's default budget: ~1 h on 2 CPU cores for MNIST
  quick  each family's quick budget (below), quality on {samples} samples per class: 6 min on 2 idle
         CPU cores for MNIST, enough to try the pipeline, not for results
{budgets}

"""


def presets_help() -> str:
    """PRESETS_HELP with each registered family's quick budget on a line."""
    budgets = [f"           {name}: " + ", ".join(f"{field}={format_field(value)}"
                                                 for field, value in family.quick_changes().items())
               for name, family in FAMILIES.items()]
    return PRESETS_HELP.format(samples=QUICK_QUALITY_SAMPLES, budgets="\n".join(budgets))


EPILOG = """\
--set FAMILY.FIELD=VALUE is typed by the field: numbers, true/false/1/0, and comma-separated tuples
(pggan.channels=64,64,32,16, pggan.betas=0,0.99). image_channels, image_height, image_width and
num_classes are read from the data; a --set that disagrees with the data is refused.

resuming and training longer:
  Each GAN's training state (networks, optimisers, RNG, position) is saved to OUT/<gan>.train.pt every
  --checkpoint-minutes, at the end, and on Ctrl-C or SIGTERM (at the next step; a second signal stops at
  once). Rerun the same command to continue a killed run from its last save: the final weights are
  bit-identical to an uninterrupted run on the same machine and thread count. To train a finished GAN
  longer, rerun with a larger budget and it continues from its state: epochs for the DCGANs and DADA,
  final_images for PGGAN (extra images at 32x32 after the growth schedule, which stays as it was; keep
  images_per_stage). A state of another config, seed, precision or training data is refused; --force
  discards it and retrains from scratch. Keep OUT/<gan>.train.pt (carry it to the next machine) to
  continue there.

examples:
  python -m runners.train_gans --preset quick
  python -m runners.train_gans --gans small_dcgan,large_dcgan,pggan,dada
  python -m runners.train_gans --gans dada --train-size 500 --out runs/gans-500
  python -m runners.train_gans --gans pggan --set pggan.images_per_stage=48000 --out runs/pggan_long
  python -m runners.train_gans --gans pggan --set pggan.images_per_stage=48000 --set pggan.final_images=336000 \\
      --out runs/pggan_long --quality-every 100000      # 3x the images, continuing the run above
  timeout -s TERM 170m python -m runners.train_gans ...  # stop cleanly before a session ends; rerun to continue
  python -m runners.train_gans --gans small_dcgan --half --no-quality --out results/gans   # float16 weights
  python -m runners.train_gans --gans dada --precision bf16 --out runs/gans-bf16   # bfloat16 autocast steps
  python -m runners.train_gans --quality-only
"""


def parse_override(text: str) -> tuple[str, str, str]:
    """'FAMILY.FIELD=VALUE' -> (family, field, value text); the value is typed later, by family_config."""
    family, _, rest = text.partition(".")
    field, _, value = rest.partition("=")
    if not (family and field and value):
        raise argparse.ArgumentTypeError(f"--set expects FAMILY.FIELD=VALUE, got {text!r}")
    return family, field, value


def build_parser() -> argparse.ArgumentParser:
    """The command line (see --help)."""
    p = argparse.ArgumentParser(prog="python -m runners.train_gans", description=DESCRIPTION,
                                epilog=presets_help() + EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gans", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=ALL_GANS,
                   help=f"comma-separated GAN families (default: {','.join(ALL_GANS)})")
    p.add_argument("--train-size", type=int, default=0,
                   help="train on a class-balanced subset of this many real images, a multiple of the number of "
                        "classes (the low-data regime; default: 0 = all)")
    p.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                   metavar="FAMILY.FIELD=VALUE", help="override one config field, e.g. small_dcgan.epochs=2; "
                                                     "recipe.FIELD=VALUE sets the low-data recipe's")
    p.add_argument("--recipe", choices=("none", "lowdata"), default="none",
                   help="lowdata: train with the data-efficient additions of gans.recipes: DiffAugment "
                        "(translation, cutout) on everything the discriminator sees, an EMA of the generator "
                        "(sampled and saved), ADA with --set recipe.ada=true; recorded in the sidecar "
                        "(default: none)")
    p.add_argument("--force", action="store_true",
                   help="retrain from scratch, discarding any checkpoint and training state of the GANs asked for")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="save each GAN's training state (OUT/<gan>.train.pt) this often while it trains; 0 = "
                        "after every step (default: 10)")
    p.add_argument("--half", action="store_true",
                   help="store finished generators as float16 (half the size, for committing; an up-to-date "
                        "float32 checkpoint is converted); without it new checkpoints are float32")
    p.add_argument("--no-quality", action="store_true", help="skip the quality report")
    p.add_argument("--quality-only", action="store_true", help="only (re)write the quality report")
    p.add_argument("--quality-samples", type=int,
                   help=f"generated images per class for the quality report (default: "
                        f"{QualityConfig.samples_per_class}; quick preset: {QUICK_QUALITY_SAMPLES})")
    p.add_argument("--quality-every", type=int, default=0, metavar="IMAGES",
                   help="also measure each GAN's current generator every IMAGES real images shown in training, "
                        "and at its end, into OUT/quality_by_budget.csv and .png (a row per GAN and budget, kept "
                        "across resumed runs); each measurement trains a CAS classifier (~1 min on 2 CPU cores), "
                        "so choose a coarse grid (default: 0 = off)")
    add_precision_flag(p, bf16="run each GAN's training steps (generator and discriminator) under bfloat16 "
                               "autocast (weights, optimiser states and checkpoints stay float32, or float16 with "
                               "--half; samples as in fp32)",
                       fixed="recorded in OUT/<gan>.json and .train.pt: continuing a GAN needs its precision")
    add_run_flags(p, out=DEFAULT_GAN_DIR, presets=PRESETS, preset_default="full", seed_default=0,
                  preset_help="training budgets: full (each config's default) or quick (see below; default: full)",
                  seed_help="base seed (default: 0)", out_help="checkpoint directory", progress=False)
    return p


DATA_FIELDS = ("image_channels", "image_height", "image_width", "num_classes")  # every family's, read from the data


def data_fields(images: ImageSet) -> dict[str, int]:
    """The config fields a GAN takes from its training data: image_channels, image_height, image_width (of
    images [N,C,H,W]) and num_classes (largest label + 1)."""
    channels, height, width = images.images_NCHW.shape[1:]
    return {"image_channels": channels, "image_height": height, "image_width": width,
            "num_classes": int(images.labels_N.max()) + 1}


def typed_overrides(overrides: list[tuple[str, str, str]]) -> list[tuple[str, str, object, str]]:
    """(family, field, typed value, text) of each --set; an unknown family or field, or a value of the wrong type,
    is a one-line UserError."""
    typed = []
    for target, field, value in overrides:
        if target == RECIPE_TARGET:
            continue
        try:
            target_family = get_family(target)
        except UserError as error:
            raise UserError(f"--set {target}.{field}={value}: {error}") from None
        try:
            typed.append((target, field, target_family.parse_field(field, value), value))
        except UserError as error:
            raise UserError(f"--set {error}") from None
    return typed


def family_config(name: str, overrides: list[tuple[str, str, str]], preset: str = "full",
                  data: dict[str, int] | None = None):
    """The family's default config, with the preset's budget (quick: GanFamily.quick_changes), the --set overrides
    (typed_overrides) and the data's fields (data_fields; a --set that disagrees with them is refused) applied."""
    family = get_family(name)
    changes = family.quick_changes() if preset == "quick" else {}
    for target, field, parsed, value in typed_overrides(overrides):
        if data is not None and field in data and parsed != data[field]:
            shape = "x".join(str(data[f]) for f in DATA_FIELDS[:3])
            raise UserError(f"--set {target}.{field}={value} disagrees with the data ({shape} images of "
                            f"{data['num_classes']} classes): a GAN is built for its data's shape and classes; drop "
                            "the flag or give other --data-dir")
        if target == name:
            changes[field] = parsed
    try:
        return family.config_class(**{**changes, **(data or {})})
    except UserError as error:
        raise UserError(f"{name} config: {error}") from None


RECIPE_TARGET = "recipe"  # --set recipe.FIELD=VALUE: a field of gans.recipes.LowDataRecipe


def recipe_from_args(recipe: str, overrides: list[tuple[str, str, str]]) -> LowDataRecipe | None:
    """The low-data recipe asked for (None for --recipe none), with its --set recipe.FIELD=VALUE fields."""
    fields = [(field, value) for target, field, value in overrides if target == RECIPE_TARGET]
    if recipe == "none":
        if fields:
            raise UserError("--set recipe.* sets the low-data recipe, which is off: add --recipe lowdata")
        return None
    parser = GanFamily(RECIPE_TARGET, LowDataRecipe, None, None)
    return LowDataRecipe(**{field: parser.parse_field(field, value) for field, value in fields})


def training_subset(train: ImageSet, size: int, seed: int) -> tuple[ImageSet, dict | None]:
    """All of `train` (record None), or a class-balanced, seeded subset of `size` images and its record
    (gans.subset: which images, so a study can show the rest stayed unseen)."""
    if size == 0:
        return train, None
    classes = data_fields(train)["num_classes"]
    if size % classes:
        raise UserError(f"--train-size {size} is not a multiple of the {classes} classes; give a multiple, e.g. "
                        f"{max(1, size // classes) * classes}")
    subset_seed = derive_seed(seed, "gan-train")
    subset, indices_N = labelled_subset(train, size // classes, subset_seed)
    return subset, subset_record(train, size // classes, subset_seed, indices_N)


def train_one(name: str, config, data: ImageSet, args, device, judge: Judge, log: BudgetLog,
              recipe: LowDataRecipe | None = None, subset: dict | None = None) -> None:
    """Train (or continue, or skip) one GAN; writes OUT/<name>.pt/.json/.train.pt/_grid.png and budget rows."""
    path = checkpoint_path(args.out, name)
    result = fit_generator(
        name, config, data, path, args.seed, precision=args.precision, device=device, recipe=recipe, half=args.half,
        force=args.force, save_every_seconds=args.checkpoint_minutes * 60, every_images=args.quality_every,
        on_budget=(lambda generator, at: log.record(name, generator, at, judge)) if args.quality_every else None,
        on_fresh_start=lambda: log.drop(name), extra={"subset": subset})
    if result.session is None:
        return
    save_sample_grid(result.generator, args.out / f"{name}_grid.png", f"{name}: one row per class",
                     class_names=list(data.classes))
    print(f"{name}: {result.session.train_seconds / 60:.1f} min over {result.session.sessions} session(s); wrote "
          f"{path}, {training_state_path(path).name} and {name}_grid.png", file=sys.stderr)
    if args.quality_every:
        log.record(name, result.generator, result.session, judge)


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0, 2 on a user error (one line), 130 when interrupted (the training state saved)."""
    args = build_parser().parse_args(argv)
    return run_guarded(lambda: run(args), f"finished GANs are kept, and the GAN in training saved its state to "
                                          f"{args.out}/<gan>.train.pt: rerun the same command to continue")


def run(args: argparse.Namespace) -> int:
    """Train (or continue) each GAN asked for, then write the quality report."""
    if not args.gans:
        raise UserError(f"--gans names no GAN: give one or more of {', '.join(sorted(ALL_GANS))}")
    check_float("--checkpoint-minutes", args.checkpoint_minutes, minimum=0)
    check_int("--quality-every", args.quality_every, minimum=0)
    check_int("--train-size", args.train_size, minimum=0)
    device = resolve_device(args.device)
    args.precision = args.precision or "fp32"
    check_precision(args.precision, device)
    if args.quality_samples is None:
        args.quality_samples = QUICK_QUALITY_SAMPLES if args.preset == "quick" else QualityConfig.samples_per_class
    if args.quality_samples <= 0:
        raise UserError(f"--quality-samples must be positive, got {args.quality_samples}")
    for name in args.gans:
        get_family(name)  # unknown names and bad --set values fail before the data loads
    typed_overrides(args.overrides)
    train, test, _ = load_train_test(args.data_dir)
    shape = data_fields(train)
    configs = {name: family_config(name, args.overrides, args.preset, shape) for name in args.gans}
    if not args.no_quality and shape["image_height"] != shape["image_width"]:
        raise UserError(f"the quality report's judge (Gal's CNN) needs square images, and these are "
                        f"{shape['image_height']}x{shape['image_width']}: add --no-quality")
    recipe = recipe_from_args(args.recipe, args.overrides)
    data, subset = training_subset(train, args.train_size, args.seed)
    with RunDir(args.out):  # one trainer per directory
        judge = Judge(train, test, QualityConfig(samples_per_class=args.quality_samples, seed=args.seed), device)
        log = BudgetLog(args.out)
        if not args.quality_only:
            if subset is not None:
                write_subset_record(args.out / "subset.json", subset)
            for name, config in configs.items():
                train_one(name, config, data, args, device, judge, log, recipe, subset)
        if not args.no_quality:
            print(f"wrote {quality_report(args.gans, judge, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
