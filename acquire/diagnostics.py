"""What each arm acquired: class counts read back from a run directory's per-arm state."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch


def acquired_class_counts(run_dir: Path, pool_labels_N: torch.Tensor, sizes: list[int]) -> pd.DataFrame:
    """Per arm and training-set size in `sizes`: how many acquired images of each class (columns 0..9).

    pool_labels_N: labels of the pool the run used, in pool order (for 'raw', the training split).
    """
    rows = []
    for path in sorted(Path(run_dir, "state").glob("*.pt")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        acquired_n = torch.cat(state["acquired"]) if state["acquired"] else torch.empty(0, dtype=torch.long)
        sources, acquisition, repeat = path.stem.split("__")
        for size in sizes:
            if size <= len(acquired_n):
                counts = torch.bincount(pool_labels_N[acquired_n[:size]], minlength=10).tolist()
                rows.append({"sources": sources, "acquisition": acquisition, "repeat": int(repeat),
                             "train_size": size, **{str(c): n for c, n in enumerate(counts)}})
    if not rows:
        raise ValueError(f"{run_dir} has no per-arm state (state/*.pt) to read")
    return pd.DataFrame(rows)
