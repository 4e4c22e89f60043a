"""The zoo's quality reports in a GAN directory OUT: OUT/quality.csv (`quality_report`: the real baseline, then one
row per trained GAN, with gans.memorisation's near-copy shares) and OUT/quality_by_budget.csv and .png (`BudgetLog`:
one row per GAN and images shown in training). runners.train_gans writes both.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch

from acquire.data import class_balanced_at_most
from acquire.files import CsvError, append_csv_row, read_csv_rows, write_csv
from gans.base import ConditionalGenerator
from gans.checkpoint import load_checkpoint
from gans.memorisation import Memorisation, memorisation, plot_memorisation
from gans.quality import REAL_ROW, Judge, plot_quality_by_budget
from gans.sources import checkpoint_path
from gans.subset import unseen_indices
from gans.training import TrainingSession

MEASURES = ["label_agreement", "frechet_distance", "cas_accuracy", "cas_balanced_accuracy"]
MEMORISATION = ["near_copy_share", "near_copy_share_heldout", "nn_median_ratio"]  # gans.memorisation, per GAN
QUALITY_COLUMNS = ["gan", "generator_parameters", "train_images", "images_shown", "train_seconds", *MEASURES,
                   *MEMORISATION]
MEMORISATION_IMAGES = 2000  # samples and held-out test images compared with the training images (class-balanced)
BUDGET_COLUMNS = ["gan", "images_shown", "train_steps", "train_seconds", *MEASURES]


class BudgetLog:
    """OUT/quality_by_budget.csv (BUDGET_COLUMNS, one row per GAN and images shown) and its plot, .png."""

    def __init__(self, out: Path):
        self.csv, self.png = Path(out) / "quality_by_budget.csv", Path(out) / "quality_by_budget.png"

    def rows(self) -> list[dict]:
        """The CSV's rows as dicts of strings (none before the first)."""
        if not self.csv.exists():
            return []
        with open(self.csv, newline="") as f:
            return list(csv.DictReader(f))

    def has(self, gan: str, images_shown: int) -> bool:
        """Whether gan was measured at this budget."""
        return any(row["gan"] == gan and int(row["images_shown"]) == images_shown for row in self.rows())

    def record(self, gan: str, generator: ConditionalGenerator, session: TrainingSession, judge: Judge) -> None:
        """Measure `generator` at the session's budget, unless a row for it exists; append the row and replot."""
        if self.has(gan, session.images_shown):
            return
        print(f"quality: {gan} after {session.images_shown:,} images ...", file=sys.stderr)
        row = {"gan": gan, "images_shown": session.images_shown, "train_steps": session.steps,
               "train_seconds": round(session.train_seconds, 1), **judge.measures(generator, gan)}
        append_csv_row(self.csv, BUDGET_COLUMNS, row)
        plot_quality_by_budget(self.csv, self.png)

    def drop(self, gan: str) -> None:
        """Forget gan's rows (its run starts from scratch)."""
        rows = self.rows()
        kept = [row for row in rows if row["gan"] != gan]
        if len(kept) == len(rows):
            return
        if kept:
            write_csv(self.csv, BUDGET_COLUMNS, kept)
            plot_quality_by_budget(self.csv, self.png)
        else:
            self.csv.unlink()
            self.png.unlink(missing_ok=True)


def memorisation_of(generator: ConditionalGenerator, name: str, meta: dict, judge: Judge) -> Memorisation:
    """gans.memorisation of a GAN's samples against the images it was trained on (its sidecar's subset record, else
    the whole training split), with held-out real test images as the baseline; at most MEMORISATION_IMAGES of each,
    class-balanced."""
    train = judge.train
    if meta.get("subset"):  # the split is the one the subset was drawn from, and draws it again: keep the rest out
        seen_N = torch.ones(len(train), dtype=torch.bool)
        seen_N[unseen_indices(train, meta["subset"])] = False
        train = train.subset(seen_N.to(train.labels_N.device))
    classes = judge.num_classes
    per_class = max(1, MEMORISATION_IMAGES // classes)
    samples = judge.samples(generator, name)
    pick = class_balanced_at_most(samples.labels_N, per_class, torch.Generator().manual_seed(0), classes)
    heldout = class_balanced_at_most(judge.test.labels_N, per_class, torch.Generator().manual_seed(1), classes)
    return memorisation(samples.subset(pick).to("cpu"), train.to("cpu"), judge.test.subset(heldout).to("cpu"))


def quality_report(names: list[str], judge: Judge, out: Path) -> Path:
    """OUT/quality.csv: the real-image baseline, then one row per trained GAN (with the images it was shown).

    The GANs in `names` are measured now; rows of other GANs measured earlier, whose checkpoints are still in
    OUT, are kept (the measures are seeded, so they agree on the same machine and thread count).
    """
    rows = [{"gan": REAL_ROW, "generator_parameters": 0, "train_images": len(judge.train),
             "images_shown": 0, "train_seconds": 0.0, **judge.real_measures(), **dict.fromkeys(MEMORISATION, "")}]
    try:
        earlier = read_csv_rows(out / "quality.csv", QUALITY_COLUMNS)
    except CsvError:  # a report of an older version: measured again from scratch
        earlier = []
    rows += [row for row in earlier
             if row["gan"] not in (REAL_ROW, *names) and checkpoint_path(out, row["gan"]).exists()]
    for name in names:
        generator, meta = load_checkpoint(checkpoint_path(out, name), name, judge.device)
        copies = memorisation_of(generator, name, meta, judge)
        plot_memorisation(copies, out / f"{name}_memorisation.png", f"{name}: nearest training image, generated vs "
                                                                      "held-out real")
        rows.append({"gan": name, "generator_parameters": meta.get("generator_parameters"),
                     "train_images": meta.get("training_images"), "images_shown": meta.get("images_shown"),
                     "train_seconds": meta.get("train_seconds"), **judge.measures(generator, name),
                     **{k: v for k, v in copies.row().items() if k in MEMORISATION}})
        print(f"quality: {name}: " + ", ".join(f"{k}={rows[-1][k]:.4g}" for k in MEASURES), file=sys.stderr)
    return write_csv(out / "quality.csv", QUALITY_COLUMNS, rows)
