"""gan-acquire's engine: data, the Bayesian CNN, MC-dropout scoring, acquisition and the active loop.

The public API, importable as ``acquire.NAME`` (loaded on first use, so ``import acquire`` stays fast):

- data: ``ImageSet``, ``as_image_set`` (arrays/tensors), ``load_dataset`` (.npz file or IDX directory),
  ``load_npz``, ``load_split`` (IDX), ``DataError``
- classifiers: ``GalCNN``, ``new_model``, ``TrainConfig``, ``train_classifier``, ``predict``
- scoring and acquisition: ``mc_probs`` (MC dropout [N,T,K] for any model), ``acquisition`` (register a function),
  ``get_acquisition``
- the loop: ``CandidatePool``, ``ExperimentConfig``, ``ActiveLearningRun``, ``Experiment`` (loop + files + figure +
  DataFrame)
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ImageSet": "acquire.data", "as_image_set": "acquire.data", "load_dataset": "acquire.data",
    "load_npz": "acquire.data", "load_split": "acquire.data", "DataError": "acquire.data",
    "GalCNN": "acquire.networks", "new_model": "acquire.networks", "TrainConfig": "acquire.training",
    "train_classifier": "acquire.training", "predict": "acquire.inference",
    "mc_probs": "acquire.mc_dropout", "TrunkHead": "acquire.mc_dropout",
    "acquisition": "acquire.functions", "get_acquisition": "acquire.functions",
    "CandidatePool": "acquire.pool",
    "ExperimentConfig": "acquire.loop", "ActiveLearningRun": "acquire.loop",
    "Experiment": "acquire.api",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'acquire' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
