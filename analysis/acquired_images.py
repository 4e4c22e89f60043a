"""See what was acquired: a figure of the images each arm took, round by round, with label, score and source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from acquire.errors import UserError
from acquire.files import write_atomic
from acquire.pool import REAL_SOURCE, CandidatePool
from acquire.rundir import read_json

GENERATED_COLOUR, REAL_COLOUR = "tab:red", "tab:green"


def arm_rounds(run_dir: Path, repeat: int) -> dict[str, list[dict]]:
    """acquisition -> its per-round records (index, label, source, score; round 0, the initial images, first) for
    every arm of `repeat` in run_dir/state, in the order of the state files."""
    arms = {}
    for path in sorted(Path(run_dir, "state").glob("*.json")):
        state = read_json(path)
        if state.get("arm", {}).get("repeat") == repeat:
            arms[f"{state['arm']['sources']}/{state['arm']['acquisition']}"] = state["rounds"]
    if not arms:
        raise UserError(f"{run_dir}/state holds no arm of repeat {repeat}; give a repeat the run has")
    return arms


def plot_acquired_images(pool: CandidatePool, run_dir: Path, out_path: Path, repeat: int = 0, rounds: int = 5,
                         per_round: int = 10, title: str = "") -> Path:
    """One row per (arm, round) for rounds 1..`rounds` of `repeat`: the first `per_round` images acquired, each
    captioned with its label and score and framed red if generated, green if real. `pool` must be the run's
    candidate pool (its positions index the states)."""
    arms = arm_rounds(run_dir, repeat)
    rows = [(arm, r, record) for arm, records in arms.items() for r, record in enumerate(records) if 1 <= r <= rounds]
    if not rows:
        raise UserError(f"{run_dir}: no arm of repeat {repeat} has acquired in rounds 1..{rounds} yet")
    columns = min(per_round, max(len(record["index"]) for _, _, record in rows))
    channels = pool.images_NCHW.shape[1]
    figure = Figure(figsize=(1.0 * columns + 2.2, 1.05 * len(rows) + 0.8))
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for row, (arm, round_index, record) in enumerate(rows):
        scores = record.get("score") or [None] * len(record["index"])
        for column in range(columns):
            axes = grid[row, column]
            axes.set_xticks([])
            axes.set_yticks([])
            if column >= len(record["index"]):
                axes.axis("off")
                continue
            image = pool.images_NCHW[record["index"][column]].cpu().numpy()
            shown = image[0] if channels == 1 else np.moveaxis(image[:3], 0, -1)
            axes.imshow(shown, cmap="gray" if channels == 1 else None, vmin=0, vmax=255)
            generated = record["source"][column] != REAL_SOURCE
            axes.add_patch(Rectangle((0, 0), 1, 1, transform=axes.transAxes, fill=False, lw=3,
                                     edgecolor=GENERATED_COLOUR if generated else REAL_COLOUR))
            score = scores[column]
            axes.set_title(f"{record['label'][column]}" + ("" if score is None else f"  {score:.2f}"), fontsize=7,
                           pad=2)
        grid[row, 0].set_ylabel(f"{arm.split('/', 1)[1]}\nround {round_index}", fontsize=7, rotation=0,
                                ha="right", va="center")
    figure.suptitle((title + "\n" if title else "") + f"repeat {repeat}: label and score above each image; red "
                    "frame = generated, green = real", fontsize=9)
    figure.subplots_adjust(left=0.16, right=0.99, top=1 - 0.7 / figure.get_figheight(), bottom=0.01, wspace=0.08,
                           hspace=0.35)
    return write_atomic(Path(out_path), lambda tmp: figure.savefig(tmp, dpi=90, format="png"))
