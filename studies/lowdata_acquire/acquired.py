"""What each arm of the study acquired: its generated images' nearest-neighbour distances to L (Q4: do acquisitions
prefer near-copies of the labelled images?) and the label gate's share, read from the runs' state files.

The pool is rebuilt from the training split and the repeat's generator (study.repeat_pool) and every round's images
are checked against the sha256 its state recorded, so a share is computed on the very images acquired.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.pool import REAL_SOURCE
from gans.memorisation import nearest_distances
from studies.lowdata_acquire.protocol import AUGMENTED, CLASSICAL, PLAIN
from studies.lowdata_acquire.study import read_study, repeat_pool


def state_records(run_dir: Path) -> dict[str, list[dict]]:
    """acquisition -> its per-round records (round 0, the initial L, first) from run_dir/state/*.json."""
    records = {}
    for path in sorted((run_dir / "state").glob("*.json")):
        saved = json.loads(path.read_text())
        records[saved["arm"]["acquisition"]] = saved["rounds"]
    return records


def near_copy_shares(cell: Path, train: ImageSet) -> pd.DataFrame:
    """One row per (arm, repeat) with generated acquisitions: arm, repeat, acquired (generated images), near_copy_share
    (the share closer to an image of L than the repeat's near-copy threshold, generator.json), median_distance
    (to the nearest image of L, pixels in [0, 1]) and, for gated arms, gated_share (mean over rounds and classes)."""
    config, _ = read_study(cell)
    rows = []
    for repeat_dir in sorted(cell.glob("r*/")):
        if not (repeat_dir / "generator.json").exists():
            continue
        repeat = int(repeat_dir.name[1:])
        threshold = json.loads((repeat_dir / "generator.json").read_text())["near_copy_threshold"]
        pool = None
        for run, prefix in ((PLAIN, ""), (AUGMENTED, f"{CLASSICAL}+")):
            for acquisition, rounds in state_records(repeat_dir / run).items():
                if len(rounds) < 2:
                    continue
                if pool is None:
                    pool = repeat_pool(config, train, cell, repeat)
                index = []
                for entry in rounds[1:]:
                    if pool.images_digest(torch.tensor(entry["index"])) != entry["images_sha256"]:
                        raise UserError(f"{repeat_dir / run}: the images of {acquisition}'s acquisitions differ from "
                                        "the rebuilt pool's; use the training split and generator the run used")
                    index += [i for i, source in zip(entry["index"], entry["source"]) if source != REAL_SOURCE]
                real_M = pool.is_real_N.nonzero().squeeze(1)
                distance_N, _ = nearest_distances(pool.images_NCHW[torch.tensor(index)], pool.images_NCHW[real_M])
                gated = [share for entry in rounds[1:] for share in entry.get("gated_share", []) if share is not None]
                rows.append({"arm": prefix + acquisition, "repeat": repeat, "acquired": len(index),
                             "near_copy_share": float((distance_N < threshold).double().mean()),
                             "median_distance": float(distance_N.median()),
                             "gated_share": sum(gated) / len(gated) if gated else float("nan")})
    return pd.DataFrame(rows, columns=["arm", "repeat", "acquired", "near_copy_share", "median_distance",
                                       "gated_share"])
