"""Keras Tuner's oracles, with the study's configuration as the first trial of a new search."""

import keras_tuner as kt

from runners import trials_table


def default_values(space):
    """The active hyperparameters of a space, each at its default."""
    hps = kt.HyperParameters()
    values = {}
    for hp in space:
        hps.merge([hp])
        if hps.is_active(hp):
            values[hp.name] = hp.default
    return values


class BaselineFirst:
    """Oracle mixin: the first trial of a new search is the defaults.

    A family may ask for more fixed first trials (FIRST_TRIALS, each a set of
    overrides of the defaults), e.g. cifar_transfer's from-scratch reference.
    """

    first_trials = ({},)

    def populate_space(self, trial_id):  # Keras Tuner's documented override for an oracle
        n = len(self.trials)  # trials begun before this one
        response = super().populate_space(trial_id)
        values = response.get("values")
        if n >= len(self.first_trials) or response.get("status") != "RUNNING" or "tuner/trial_id" in values:
            return response  # a searched trial, or Hyperband continuing one
        fixed = {**default_values(self.hyperparameters.space), **self.first_trials[n]}
        bookkeeping = {k: v for k, v in values.items() if k.startswith("tuner/")}  # Hyperband's bracket
        if bookkeeping:
            # Like for like: the baseline (and a family's other fixed first trials) trains with the full
            # epoch budget, not the first bracket's share, so "best vs baseline" never compares unequal
            # training.
            bookkeeping["tuner/epochs"] = self.max_epochs
        return {"status": "RUNNING", "values": {**fixed, **bookkeeping}}


class RandomOracle(BaselineFirst, kt.oracles.RandomSearchOracle):
    pass


class BayesianOracle(BaselineFirst, kt.oracles.BayesianOptimizationOracle):
    pass


class HyperbandOracle(BaselineFirst, kt.oracles.HyperbandOracle):
    pass


def make_oracle(tuner, max_trials, epochs, seed, objective=trials_table.OBJECTIVE, *, study=None, pruner="median"):
    """Keras Tuner's own oracles (random, bayesian, hyperband), or "tpe": the Optuna-backed one, whose study is
    study=(storage URL, study name)."""
    objective = kt.Objective(*objective)
    if tuner == "tpe":
        from runners.keras_search.optuna_oracle import StudyOracle
        oracle = StudyOracle(objective, max_trials, seed, storage_url=study[0], study_name=study[1], epochs=epochs,
                             sampler="tpe", pruner=pruner)
    elif tuner == "random":
        oracle = RandomOracle(objective=objective, max_trials=max_trials, seed=seed)
    elif tuner == "bayesian":
        oracle = BayesianOracle(objective=objective, max_trials=max_trials, seed=seed)
    elif tuner == "hyperband":
        # hyperband_iterations=None: brackets repeat until --max-trials, which stops the search
        oracle = HyperbandOracle(objective=objective, max_epochs=epochs, factor=3, hyperband_iterations=None,
                                 seed=seed)
    else:
        raise ValueError(tuner)
    # Hyperband has no max_trials of its own; the oracle honours the attribute.
    oracle.max_trials = max_trials
    # Failures in a row are counted by the suite (trials_table.failed_in_a_row), the same for every engine
    oracle.max_consecutive_failed_trials = 10 ** 9
    return oracle
