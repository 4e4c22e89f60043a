"""One active-learning experiment on your data, end to end: the loop, its files, its figure and a DataFrame.

`Experiment` is what the command-line runner runs, for any data (an ImageSet of any [N,C,H,W] and K, or
pools of several sources) and any classifier (a model factory and a training function; default Gal et al.'s CNN).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from acquire.data import ImageSet, as_image_set
from acquire.device import resolve_device
from acquire.errors import UserError
from acquire.loop import ActiveLearningRun, ExperimentConfig
from acquire.factories import ModelFactory
from acquire.training import TrainFn
from acquire.pool import REAL_SOURCE, CandidatePool


def image_set(name: str, data) -> ImageSet:
    """`data` as an ImageSet: itself, or an (images, labels) pair of arrays or tensors (acquire.data.as_image_set)."""
    if isinstance(data, ImageSet):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return as_image_set(*data)
    raise UserError(f"{name} must be an ImageSet or an (images, labels) pair, got {type(data).__name__}"
                    + (" (images without labels)" if hasattr(data, "shape") else "")
                    + "; e.g. Experiment(config, (x_pool, y_pool), (x_test, y_test), out_dir)")


class Experiment:
    """Runs (or, with resume=True, continues) `config` on `pool` and scores every round on `test`, in `out_dir`.

    pool: an ImageSet or an (images, labels) pair (one source, named "raw": config.sources must be ["raw"]), or
    source-set name -> CandidatePool.
    test: the test set, an ImageSet (uint8 images [N,C,H,W], labels [N] in 0..K-1) or an (images, labels) pair.
    resumable_provenance: keys of config.sources_provenance a resume may change (ActiveLearningRun).
    model, trainer: see ActiveLearningRun (model_factory, train_fn); default Gal et al.'s CNN and its Adam recipe.
    device: "auto" (CUDA when present), "cpu", "cuda", or a torch.device.
    Precision is a setting of the run: ExperimentConfig(precision="bf16") trains under bfloat16 autocast and scores
    with bfloat16 GEMMs (a UserError where the device lacks bfloat16).
    Writes out_dir/config.json, rounds.csv, state/ (as the CLI does) and, after run(), curves.png. Use as a context
    manager, or call close(), to release the directory's lock.
    """

    def __init__(self, config: ExperimentConfig, pool: ImageSet | tuple | dict[str, CandidatePool],
                 test: ImageSet | tuple, out_dir: str | Path, *, model: ModelFactory | None = None,
                 trainer: TrainFn | None = None, device: str | torch.device = "auto", resume: bool = False,
                 resumable_provenance: tuple[str, ...] = ()):
        device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        if not isinstance(pool, dict):
            pool = {REAL_SOURCE: CandidatePool({REAL_SOURCE: image_set("pool", pool)}, device)}
        self.out_dir = Path(out_dir)
        self.loop = ActiveLearningRun(config, pool, image_set("test", test), self.out_dir, device, resume, model,
                                      trainer, resumable_provenance=resumable_provenance)

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
        from analysis.curves import plot_curves, protocol_text, read_curves  # the façade draws; the engine does not
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
