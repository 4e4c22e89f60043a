"""Running the study: one repeat (subset, generator, pool, the two runs) and a cell of repeats, resumable.

A cell directory OUT holds study.json (the LowDataAcquireConfig and the data's digests; a resume refuses any
other) and per repeat r{r}/: subset.json (which images are L), gan/<family>.pt + .json (float16, with its
.train.pt while it trains), generator.json (its quality and memorisation), plain/ and augmented/ (run
directories of acquire.api.Experiment: config.json, rounds.csv, state/). Every step is skipped when its output
is complete and continued when it is partial, so rerunning the same command after any interruption goes on.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import torch

from acquire.api import Experiment
from acquire.builtins import MODELS
from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.files import write_json
from acquire.loop import ExperimentConfig
from acquire.digests import image_set_digest
from acquire.pool import REAL_SOURCE, CandidatePool
from acquire.rundir import CONFIG_FILE
from acquire.seeding import derive_seed
from acquire.training import TrainConfig
from gans.base import balanced_samples
from gans.checkpoint import load_checkpoint
from gans.fit import config_for_data, fit_generator
from gans.quality import Judge, QualityConfig, measure_on_subset
from gans.recipes import LowDataRecipe
from gans.subset import labelled_subset, subset_record, write_subset_record
from studies.lowdata_acquire.augmented_training import train_augmented
from studies.lowdata_acquire.protocol import AUGMENTED, PLAIN, LowDataAcquireConfig

STUDY_FILE = "study.json"


def num_classes(images: ImageSet) -> int:
    return int(images.labels_N.max()) + 1


def read_study(cell: Path) -> tuple[LowDataAcquireConfig, dict]:
    """The settings a cell ran with and its study.json record (dataset, data digests); a one-line UserError when
    `cell` holds none. The record leaves out the number of repeats (a cell may grow): the config keeps its default."""
    path = Path(cell) / STUDY_FILE
    if not path.exists():
        raise UserError(f"{cell} holds no {STUDY_FILE}: give directories written by runners.lowdata_acquire")
    saved = json.loads(path.read_text())
    return LowDataAcquireConfig(**saved["study"]), saved


def open_cell(config: LowDataAcquireConfig, train: ImageSet, test: ImageSet, out: Path, dataset: str) -> None:
    """Write OUT/study.json, or check that the one there is this study on this data (a one-line UserError); the
    number of repeats may grow."""
    record = {"study": {k: v for k, v in config.to_dict().items() if k != "repeats"}, "dataset": dataset, "train_sha256": image_set_digest(train),
              "test_sha256": image_set_digest(test)}
    path = out / STUDY_FILE
    if path.exists():
        saved, asked = json.loads(path.read_text()), json.loads(json.dumps(record))
        if saved != asked:
            differing = [k for k in asked["study"] if saved.get("study", {}).get(k) != asked["study"][k]]
            differing += [k for k in ("dataset", "train_sha256", "test_sha256") if saved.get(k) != asked[k]]
            raise UserError(f"{path} is another study (differs in {', '.join(differing)}); resume it with its own "
                            "settings and data, or give another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, record)


def labelled_set(config: LowDataAcquireConfig, train: ImageSet, repeat: int) -> tuple[ImageSet, torch.Tensor, dict]:
    """Repeat r's L: (images, their positions [n·K] in the training split, the subset record)."""
    subset_seed = derive_seed(config.seed, "labelled", repeat)
    labelled, index_N = labelled_subset(train, config.per_class, subset_seed)
    return labelled, index_N, subset_record(train, config.per_class, subset_seed, index_N)


def generated_candidates(config: LowDataAcquireConfig, generator, repeat: int, device) -> ImageSet:
    """Repeat r's generated candidates: config.generated_per_class samples of each class, in class order."""
    return balanced_samples(generator, config.generated_per_class, derive_seed(config.seed, "pool", repeat), device)


def repeat_pool(config: LowDataAcquireConfig, train: ImageSet, out: Path, repeat: int, device="cpu") -> CandidatePool:
    """The candidate pool repeat r's runs acquired from (L, then the generated candidates), rebuilt from the
    training split and OUT/r{r}/gan/: the pool positions of state/<arm>.json index it."""
    labelled = labelled_set(config, train, repeat)[0].to(device)
    generator = load_checkpoint(out / f"r{repeat}" / "gan" / f"{config.family}.pt", config.family, device)[0]
    return CandidatePool({REAL_SOURCE: labelled, config.family: generated_candidates(config, generator, repeat, device)},
                         device)


def fit_repeat_generator(config: LowDataAcquireConfig, labelled: ImageSet, record: dict, out: Path, repeat: int,
                         device, progress: bool) -> Path:
    """Train (or continue, or find) repeat r's generator on L alone; its float16 checkpoint's path."""
    path = out / "gan" / f"{config.family}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fit_generator(config.family, config_for_data(config.family, labelled, config.gan_images), labelled, path, derive_seed(config.seed, "gan", repeat),
                  device=device, recipe=LowDataRecipe() if config.recipe else None, half=True,
                  save_every_seconds=300, extra={"subset": record}, progress=progress)
    return path


def experiment_config(config: LowDataAcquireConfig, run: str, labelled: ImageSet, source_set: str, dataset: str,
                      provenance: dict) -> ExperimentConfig:
    """The run `run` (PLAIN or AUGMENTED) of a repeat: |L| initial images, then config.rounds rounds of k."""
    acquisitions = config.acquisitions if run == PLAIN else config.augmented_acquisitions
    return ExperimentConfig(
        sources=[source_set], acquisitions=list(acquisitions), rounds=config.rounds,
        per_round=config.k(num_classes(labelled)), repeats=1, initial=len(labelled), mc_samples=config.mc_samples,
        pool_subset=config.pool_subset, seed=config.seed, train=TrainConfig(epochs=config.epochs),
        precision=config.precision, sources_provenance=provenance, dataset=dataset, gate_judge_epochs=config.epochs)


def run_repeat(config: LowDataAcquireConfig, train: ImageSet, test: ImageSet, out: Path, repeat: int, dataset: str,
               judge: Judge, device, progress: bool = True) -> None:
    """Repeat `repeat` of a cell into OUT/r{repeat}/ (see the module docstring); skips what is done."""
    out = out / f"r{repeat}"
    out.mkdir(parents=True, exist_ok=True)
    labelled, index_N, record = labelled_set(config, train, repeat)
    write_subset_record(out / "subset.json", record)
    labelled = labelled.to(device)
    path = fit_repeat_generator(config, labelled, record, out, repeat, device, progress)
    generator, sidecar = load_checkpoint(path, config.family, device)  # always the saved float16 weights
    if not (out / "generator.json").exists():
        unseen_N = torch.ones(len(train), dtype=torch.bool)
        unseen_N[index_N] = False
        print(f"r{repeat}: measuring the generator's quality and memorisation ...", file=sys.stderr)
        write_json(out / "generator.json", {"repeat": repeat, "images_shown": sidecar.get("images_shown"),
                                            "train_seconds": sidecar.get("train_seconds"),
                                            **measure_on_subset(generator, config.family, labelled, train,
                                                                unseen_N.nonzero().squeeze(1), judge,
                                                                derive_seed(config.seed, "heldout", repeat))})
    generated = generated_candidates(config, generator, repeat, device)
    source_set = f"{REAL_SOURCE}+{config.family}"
    pools = {source_set: CandidatePool({REAL_SOURCE: labelled, config.family: generated}, device)}
    provenance = {"generator_sha256": sidecar["weights_sha256"], "labelled_subset": record, "repeat": repeat}
    model = partial(MODELS["gal"][1], num_classes=num_classes(train), image_shape=tuple(train.images_NCHW.shape[1:]))
    for run, trainer in ((PLAIN, None), (AUGMENTED, train_augmented)):
        run_dir = out / run
        exp_config = experiment_config(config, run, labelled, source_set, dataset, provenance)
        with Experiment(exp_config, {k: p.fresh() for k, p in pools.items()}, test.to(device), run_dir, model=model,
                        trainer=trainer, device=device, resume=(run_dir / CONFIG_FILE).exists()) as experiment:
            experiment.run(progress=progress)


def run_cell(config: LowDataAcquireConfig, train: ImageSet, test: ImageSet, out: Path, dataset: str, device,
             repeats: range | None = None, progress: bool = True) -> None:
    """Every repeat of a cell (or those in `repeats`), in order, into OUT."""
    out = Path(out)
    open_cell(config, train, test, out, dataset)
    judge = Judge(train, test, _quality_config(config), device)
    for repeat in repeats if repeats is not None else range(config.repeats):
        print(f"{out}: repeat {repeat + 1}/{config.repeats}", file=sys.stderr)
        run_repeat(config, train, test, out, repeat, dataset, judge, device, progress)


def _quality_config(config: LowDataAcquireConfig) -> QualityConfig:
    """The generators' quality measures: config.quality_samples per class (a CAS classifier on them), its seed."""
    return QualityConfig(samples_per_class=config.quality_samples, seed=config.seed)
