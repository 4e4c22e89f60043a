"""One active-learning experiment on your data, end to end: the loop, its files, its figure and a DataFrame.

`Experiment` is what `python -m runners.mnist_bald` runs, for any data (an ImageSet of any [N,C,H,W] and K, or
pools of several sources) and any classifier (a model factory and a training function; default Gal et al.'s CNN).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from acquire.data import ImageSet
from acquire.device import resolve_device
from acquire.loop import ActiveLearningRun, ExperimentConfig
from acquire.factories import ModelFactory
from acquire.training import TrainFn
from analysis.curves import plot_curves, protocol_text, read_curves
from acquire.pool import REAL_SOURCE, CandidatePool


class Experiment:
    """Runs (or, with resume=True, continues) `config` on `pool` and scores every round on `test`, in `out_dir`.

    pool: an ImageSet (one source, named "raw": config.sources must be ["raw"]), or source-set name -> CandidatePool.
    test: the test set, uint8 images [N,C,H,W] and labels [N] (0..K-1).
    model, trainer: see ActiveLearningRun (model_factory, train_fn); default Gal et al.'s CNN and its Adam recipe.
    device: "auto" (CUDA when present), "cpu", "cuda", or a torch.device.
    Precision is a setting of the run: ExperimentConfig(precision="bf16") trains under bfloat16 autocast and scores
    with bfloat16 GEMMs (a ValueError where the device lacks bfloat16).
    Writes out_dir/config.json, rounds.csv, state/ (as the CLI does) and, after run(), curves.png. Use as a context
    manager, or call close(), to release the directory's lock.
    """

    def __init__(self, config: ExperimentConfig, pool: ImageSet | dict[str, CandidatePool], test: ImageSet,
                 out_dir: str | Path, *, model: ModelFactory | None = None, trainer: TrainFn | None = None,
                 device: str | torch.device = "auto", resume: bool = False):
        device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        if isinstance(pool, ImageSet):
            pool = {REAL_SOURCE: CandidatePool({REAL_SOURCE: pool}, device)}
        self.out_dir = Path(out_dir)
        self.loop = ActiveLearningRun(config, pool, test, self.out_dir, device, resume, model, trainer)

    @property
    def config(self) -> ExperimentConfig:
        """The run's full config (with the pools' fingerprint and the model's name), as saved in config.json."""
        return self.loop.config

    @property
    def csv_path(self) -> Path:
        return self.loop.csv_path

    @property
    def plot_path(self) -> Path:
        return self.out_dir / "curves.png"

    def run(self, progress: bool = True) -> pd.DataFrame:
        """Advance every arm to config.rounds, draw curves.png; returns rounds.csv as a DataFrame (one row per arm
        and round; columns as acquire.loop.CSV_COLUMNS)."""
        self.loop.run(progress)
        return self._finish()

    def run_on_ray(self, open_worker, options=None, progress: bool = True) -> pd.DataFrame:
        """As run(), with one Ray task per arm (acquire.ray_executor.run_on_ray; `options` a RayOptions).
        open_worker(arms) -> ActiveLearningRun(..., resume=True, worker_arms=arms) on the same directory, rebuilt
        in the task's process (so a module-level function or a partial of one); the rows are the same."""
        from acquire.ray_executor import RayOptions, run_on_ray
        run_on_ray(self.loop, open_worker, options or RayOptions(), progress)
        return self._finish()

    def _finish(self) -> pd.DataFrame:
        config = self.config
        plot_curves(read_curves([self.csv_path]), self.plot_path, title=", ".join(config.sources),
                    dataset=config.dataset, protocol=protocol_text(config.to_dict()))
        return pd.read_csv(self.csv_path)

    def close(self) -> None:
        """Release the output directory's lock."""
        self.loop.close()

    def __enter__(self) -> "Experiment":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
