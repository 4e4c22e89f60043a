"""The rows of the generator table (see the package docstring): fit, measure, append; and their summary."""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.files import append_csv_row
from acquire.seeding import derive_seed
from gans.checkpoint import load_checkpoint
from gans.fit import config_for_data, fit_generator
from gans.quality import Judge, QualityConfig, measure_on_subset
from gans.recipes import LowDataRecipe
from gans.registry import get_family
from gans.subset import labelled_subset, subset_record

RECIPES = ("lowdata", "none")
MEASURES = ["label_agreement", "frechet_distance", "cas_accuracy", "near_copy_share", "nn_median_ratio"]
COLUMNS = ["per_class", "family", "recipe", "seed", "images_shown", "train_seconds", "label_agreement",
           "frechet_distance", "cas_accuracy", "cas_balanced_accuracy", "near_copy_share", "near_copy_share_heldout",
           "nn_median_ratio"]


@dataclass(frozen=True)
class TableConfig:
    per_class: tuple[int, ...] = (10, 50, 100)
    families: tuple[str, ...] = ("small_dcgan", "large_dcgan", "pggan", "dada")
    recipes: tuple[str, ...] = RECIPES
    seeds: tuple[int, ...] = (0, 1, 2)
    images_shown: int = 200_000
    quality_samples: int = 300

    def __post_init__(self):
        for family in self.families:
            get_family(family)
        bad = [r for r in self.recipes if r not in RECIPES]
        if bad or not self.recipes:
            raise UserError(f"recipes are {', '.join(RECIPES)}; got {list(self.recipes)}")
        if not self.per_class or min(self.per_class) < 1 or self.images_shown < 1 or self.quality_samples < 1:
            raise UserError("per_class, images_shown and quality_samples must be positive")

    def cells(self) -> list[tuple[int, str, str, int]]:
        """(n, family, recipe, seed) in the order they run: seed-major, so every family has a row early."""
        return [(n, family, recipe, seed) for seed in self.seeds for n in self.per_class for family in self.families
                for recipe in self.recipes]


def done_cells(path: Path) -> set[tuple[int, str, str, int]]:
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {(int(r["per_class"]), r["family"], r["recipe"], int(r["seed"])) for r in csv.DictReader(f)}


def run_table(config: TableConfig, train: ImageSet, test: ImageSet, out: Path, device, progress: bool = True) -> Path:
    """Every missing row of OUT/table.csv (generators under OUT/n{n}/s{seed}/, float16); returns the CSV's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "table.csv"
    judge = Judge(train, test, QualityConfig(samples_per_class=config.quality_samples), device)
    for n, family, recipe, seed in config.cells():
        if (n, family, recipe, seed) in done_cells(table):
            continue
        print(f"{out}: n={n} {family} recipe={recipe} seed={seed}", file=sys.stderr)
        subset_seed = derive_seed(seed, "gan-table", n)
        labelled, index_N = labelled_subset(train, n, subset_seed)
        path = out / f"n{n}" / f"s{seed}" / f"{family}_{recipe}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        fit_generator(family, config_for_data(family, labelled, config.images_shown), labelled.to(device), path,
                      derive_seed(seed, "gan-table", family), device=device,
                      recipe=LowDataRecipe() if recipe == "lowdata" else None, half=True, save_every_seconds=300,
                      extra={"subset": subset_record(train, n, subset_seed, index_N)}, progress=progress)
        generator, meta = load_checkpoint(path, family, device)
        unseen_N = torch.ones(len(train), dtype=torch.bool)
        unseen_N[index_N] = False
        measures = measure_on_subset(generator, family, labelled, train, unseen_N.nonzero().squeeze(1), judge,
                                     derive_seed(seed, "gan-table", "heldout", n))
        append_csv_row(table, COLUMNS, {"per_class": n, "family": family, "recipe": recipe, "seed": seed,
                                        "images_shown": meta["images_shown"], "train_seconds": meta["train_seconds"],
                                        **{k: measures[k] for k in COLUMNS[6:]}})
    return table


def summary(table: Path) -> pd.DataFrame:
    """Mean ± std over seeds of each (n, family, recipe): the measures, images shown and minutes (one thread)."""
    df = pd.read_csv(table)
    grouped = df.groupby(["per_class", "family", "recipe"])
    result = grouped[MEASURES + ["images_shown"]].mean().add_suffix("_mean")
    result = result.join(grouped[MEASURES].std().add_suffix("_std"))
    result["minutes_mean"] = grouped["train_seconds"].mean() / 60
    result["seeds"] = grouped.size()
    return result.reset_index()
