"""The active-learning loop of Nielsen & Okoniewski (Algorithm 1), for many arms in lockstep, in four pieces:

  config     ExperimentConfig (frozen settings), Arm (source set, acquisition, repeat)
  store      RunStore: the run directory's locks, files and every resume check
  arm        ArmRounds: an arm's round (seed keys, train, acquire, record)
  run        ActiveLearningRun: checks the inputs and advances the arms (in process; on Ray: acquire.ray_executor)
"""

from acquire.loop.arm import ArmKeys, ArmRounds, ArmState
from acquire.loop.config import (CSV_COLUMNS, DEFAULT_MODEL, DEFAULT_TRAINER, RESUMABLE_CHANGES, TIMING_COLUMNS, Arm,
                                 ExperimentConfig, arms_of)
from acquire.loop.run import ActiveLearningRun, callable_name
from acquire.digests import model_digest
from acquire.loop.store import RunStore, parse_state, same_row
from acquire.rundir import RunDirectoryError

__all__ = ["ActiveLearningRun", "Arm", "ArmKeys", "ArmRounds", "ArmState", "CSV_COLUMNS", "DEFAULT_MODEL",
           "DEFAULT_TRAINER", "ExperimentConfig", "RESUMABLE_CHANGES", "RunDirectoryError", "RunStore",
           "TIMING_COLUMNS", "arms_of", "callable_name", "model_digest", "parse_state", "same_row"]
