"""What each arm acquired: class counts read back from a run directory's per-arm state (state/*.json)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from acquire.rundir import read_json


def acquired_labels(run_dir: Path) -> dict[tuple[str, str, int], list[int]]:
    """(sources, acquisition, repeat) -> the labels of the arm's acquisitions [n], in acquisition order
    (the initial images first), as each arm's state records them (any source, any number of classes)."""
    arms = {}
    for path in sorted(Path(run_dir, "state").glob("*.json")):
        state = read_json(path)
        try:
            arm = state["arm"]
            arms[arm["sources"], arm["acquisition"], arm["repeat"]] = [y for r in state["rounds"] for y in r["label"]]
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path} is not an arm state of runners.mnist_bald (missing {error})") from None
    if not arms:
        raise ValueError(f"{run_dir} has no per-arm state (state/*.json) to read; give the --out of a "
                         "runners.mnist_bald run")
    return arms


def acquired_class_counts(run_dir: Path, sizes: list[int]) -> pd.DataFrame:
    """Per arm and training-set size in `sizes`: how many acquired images of each class (columns '0'..'K-1',
    K = 1 + the largest label any arm acquired); sizes an arm has not reached are left out."""
    arms = acquired_labels(run_dir)
    num_classes = 1 + max((max(labels) for labels in arms.values() if labels), default=0)
    rows = []
    for (sources, acquisition, repeat), labels in arms.items():
        for size in sizes:
            if size <= len(labels):
                counts = [0] * num_classes
                for y in labels[:size]:
                    counts[y] += 1
                rows.append({"sources": sources, "acquisition": acquisition, "repeat": repeat, "train_size": size,
                             **{str(c): n for c, n in enumerate(counts)}})
    return pd.DataFrame(rows)
