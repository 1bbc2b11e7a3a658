"""A trial's status, as trials.csv and the tables write it, and the one translation from each engine's own.

Every trial of every search is recorded in an Optuna study (runners/record.py), so the statuses are the names
of Optuna's TrialState that a trial ends in or runs in. Keras Tuner's oracles speak its TrialStatus instead
(COMPLETED, FAILED, INVALID, STOPPED, RUNNING, IDLE): `of_keras_tuner` maps those.
"""

import enum


class Status(str, enum.Enum):
    """Compares equal to its name ("COMPLETE"), so rows read back from a CSV compare with it as they are."""
    COMPLETE = "COMPLETE"  # trained to its last epoch and scored
    PRUNED = "PRUNED"  # stopped early by the pruner or a hard time budget: scored at its last epoch, never a best
    FAIL = "FAIL"  # raised, or ended without a score
    RUNNING = "RUNNING"  # started and not ended: a search in progress, or one that was killed

    def __str__(self):  # "COMPLETE" in f-strings, CSV cells and JSON on every Python version
        return self.value


ENDED = (Status.COMPLETE, Status.PRUNED, Status.FAIL)
SCORED = (Status.COMPLETE, Status.PRUNED)  # a value on the objective (a pruned trial's: its last epoch's)

# Keras Tuner's TrialStatus of an ended trial -> the suite's (INVALID: a trial whose hyperparameters could not be
# built; STOPPED: stopped by the oracle, which is how the suite's pruner stops a Keras trial)
_OF_KERAS_TUNER = {"COMPLETED": Status.COMPLETE, "FAILED": Status.FAIL, "INVALID": Status.FAIL,
                   "STOPPED": Status.PRUNED}
KERAS_TUNER_ENDED = tuple(_OF_KERAS_TUNER)


def of_keras_tuner(status: str) -> Status:
    """The suite's status of a Keras Tuner trial status: RUNNING for one not ended (RUNNING, IDLE)."""
    return _OF_KERAS_TUNER.get(status, Status.RUNNING)
