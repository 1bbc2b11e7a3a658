"""The search policy: who proposes a trial, when the proposals start to model, which pruner stops a trial and by
what margin. Both engines build their sampler and pruner here, from the search's budget, and nowhere else.

    Budget(max_trials, time_budget, fixed, epochs, parallel)    what the search may spend, and its fixed trials
    startup_trials(budget)       trials TPE proposes at random (or from the prior) before it models
    pruner_startup(budget)       finished trials before the median pruner stops any
    make_sampler(name, seed, budget, defaults)     --sampler: tpe, tpe-prior (piBO: runners/prior.py), random, nsga2
    make_pruner(name, budget)    --pruner: median, successive-halving, hyperband (each with the noise margin), none

The noise margin: a pruner's own rule says whether a trial falls below its cut (the median pruner: the trial's
best value so far below the median of the finished trials at that epoch; successive halving and Hyperband: its
value outside the top 1/eta of its rung); the trial is then pruned only if it is below that cut by more than
NOISE_Z standard errors of its own validation score (accuracy's binomial error at the validation set's size).
It is a margin, not a test: it ignores the cut's own noise and that every trial is scored on the same
validation rows. A trial the rule would have pruned and the margin kept is marked `spared_by_margin`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import optuna

from lyrics_cifar_search.runners import compat
from lyrics_cifar_search.runners.prior import Defaults, NearDefaults, Prior, PriorTPE

# A trial is pruned only this many standard errors of its own validation score beyond its pruner's cut.
NOISE_Z = 2.0
# TPE proposes at random for at most Optuna's own default start-up.
OPTUNA_STARTUP = 10
# The median pruner waits for at most Optuna's own default of finished trials.
OPTUNA_PRUNER_STARTUP = 5
# Trials a time-budgeted search runs at random beyond its fixed ones before TPE models: its size is not known
# when it starts, so its start-up is the smallest that gives TPE evidence of its own.
TIMED_EXTRA_STARTUP = 2

@dataclass(frozen=True)
class Budget:
    """What a search may spend: max_trials (None: no limit, Keras Tuner's), time_budget in seconds (None: none;
    then max_trials is a cap, not the search's size), the family's fixed first trials (the baseline first),
    epochs per Keras trial (None: an Optuna family), parallel (workers propose while others run)."""
    max_trials: Optional[int] = 10
    time_budget: Optional[float] = None
    fixed: int = 1
    epochs: Optional[int] = None
    parallel: bool = False


def startup_trials(budget: Budget) -> int:
    """Trials TPE proposes without modelling: more than the fixed first trials (they are its first evidence),
    a quarter of --max-trials, at most Optuna's 10. Under a time budget, the fixed trials plus two: how many
    trials fit is unknown, and a stand-in --max-trials (1,000) left a 90 s search random search throughout."""
    fixed = max(budget.fixed, 0)
    if budget.time_budget is not None:
        return fixed + TIMED_EXTRA_STARTUP
    if budget.max_trials is None:
        return max(OPTUNA_STARTUP, fixed + TIMED_EXTRA_STARTUP)
    return min(OPTUNA_STARTUP, max(fixed + 2, -(-budget.max_trials // 4)))


def pruner_startup(budget: Budget) -> int:
    """Finished trials before the median pruner stops any: more than the fixed first trials (so that a searched
    trial is part of the bar: cifar_cnn's two alone pruned 36 of 39 trials of a 5-minute search), a fifth of the
    search from 2 up to Optuna's 5. Under a time budget, the fixed trials plus one."""
    fixed = max(budget.fixed, 0)
    if budget.time_budget is not None:
        return max(fixed + 1, 2)
    share = OPTUNA_PRUNER_STARTUP if budget.max_trials is None else min(OPTUNA_PRUNER_STARTUP,
                                                                         max(2, budget.max_trials // 5))
    return max(fixed + 1, share)


def warmup_epochs(epochs: int) -> int:
    """Epochs every trial trains before a pruner may stop it: a fifth of the budget, at least 1."""
    return max(1, epochs // 5)


def hyperband_brackets(epochs: int) -> int:
    """How many brackets Optuna's HyperbandPruner makes for make_pruner's resources (its own formula, reduction
    factor 3). TPE counts its start-up in each bracket apart."""
    warmup = warmup_epochs(epochs)
    return math.floor(math.log(max(epochs, warmup) / warmup, 3)) + 1


def sampler_startup(budget: Budget, pruner: str = "none") -> int:
    """TPE's n_startup_trials: startup_trials, divided among Hyperband's brackets (each models apart)."""
    startup = startup_trials(budget)
    if pruner == "hyperband" and budget.epochs:
        startup = max(budget.fixed + 1, -(-startup // hyperband_brackets(budget.epochs)))
    return startup


def prior_beta(budget: Budget) -> float:
    """piBO's beta (Hvarfner et al. 2022: beta = N / 10 for a budget of N trials), at least 1; a time-budgeted or
    unlimited search counts as 100 trials."""
    n = budget.max_trials if budget.max_trials is not None and budget.time_budget is None else 100
    return max(1.0, n / 10)


def summary(budget: Budget, sampler: str, pruner: str) -> dict:
    """What the search runs with, as the engines record it in the study (its user attribute "policy", shown by
    optuna-dashboard): TPE's start-up, the median pruner's start-up and warm-up, the margin, piBO's beta."""
    said = {"sampler": sampler, "pruner": pruner, "time_budgeted": budget.time_budget is not None,
            "fixed_trials": budget.fixed}
    if sampler == "nsga2":
        said["population_size"] = nsga2_population(budget)
    elif sampler != "random":
        said["startup_trials"] = sampler_startup(budget, pruner)
    if sampler == "tpe-prior":
        said["prior_beta"] = prior_beta(budget)
    if pruner != "none" and budget.epochs:
        said.update(warmup_epochs=warmup_epochs(budget.epochs), margin_standard_errors=NOISE_Z)
        if pruner == "median":
            said["pruner_startup"] = pruner_startup(budget)
    return said


# --- samplers ------------------------------------------------------------------------------------------------

def make_sampler(name: str, seed: int, budget: Budget, *, pruner: str = "none", defaults: Optional[Defaults] = None,
                 legacy_prior: bool = False) -> optuna.samplers.BaseSampler:
    """--sampler: "tpe" (multivariate, grouped for conditional spaces, constant liar when parallel; with several
    objectives, Optuna's multi-objective TPE), "tpe-prior" (the same, with piBO's prior on the defaults:
    PriorTPE), "random", "nsga2" (NSGA-II, for several objectives); seeded. legacy_prior: a search recorded
    with the first tpe-prior (a mixture, NearDefaults) resumes with it."""
    startup = sampler_startup(budget, pruner)
    kwargs: dict[str, Any] = dict(seed=seed, multivariate=True, group=True, n_startup_trials=startup,
                                  constant_liar=budget.parallel)
    with warnings.catch_warnings():  # multivariate, group and constant_liar are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(**kwargs)
        if name == "tpe-prior" and legacy_prior:
            return NearDefaults(optuna.samplers.TPESampler(**kwargs), defaults or {}, seed)
        if name == "tpe-prior":
            return PriorTPE(Prior(defaults or {}), beta=prior_beta(budget), **kwargs)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":  # a genetic search, for several objectives: its first generation is drawn at random
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=nsga2_population(budget))
    raise ValueError(name)


def nsga2_population(budget: Budget) -> int:
    """NSGA-II's generation: TPE's start-up (its first generation is random as TPE's start-up is), at least 4;
    Optuna's default of 50 would leave a search of fewer than 50 trials random throughout."""
    return max(4, startup_trials(budget))


# --- pruners -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What a pruner decided for a trial whose value its rule put beyond its cut: how far beyond (in the
    objective's units, worse positive), the trial's standard error, and whether the margin let it be pruned."""
    trial: int
    beyond: float
    se: Optional[float]
    pruned: bool

    @property
    def spared(self) -> bool:
        return not self.pruned


class _Margin:
    """A pruner mixin: its own rule decides first; where the rule prunes, the margin may spare."""

    last: Optional[Verdict] = None

    def _margin(self, study, trial, value, cut) -> bool:
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        beyond = (cut - value) if maximize else (value - cut)
        se = trial.user_attrs.get("objective_se")
        pruned = beyond > NOISE_Z * (se or 0.0)
        self.last = Verdict(trial.number, float(beyond), se, pruned)
        return pruned


class MarginMedianPruner(_Margin, optuna.pruners.MedianPruner):
    """Optuna's MedianPruner (the trial's best value so far against the median of the finished trials' values at
    this epoch), with the noise margin on its cut."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        self.last = None
        if not super().prune(study, trial):
            return False
        values = np.asarray(list(trial.intermediate_values.values()), dtype=float)
        if np.isnan(values).all():
            return True
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        best = float(np.nanmax(values) if maximize else np.nanmin(values))
        step = trial.last_step
        at_step = [t.intermediate_values[step] for t in study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if step in t.intermediate_values]
        return self._margin(study, trial, best, float(np.nanmedian(at_step)))


class MarginSuccessiveHalvingPruner(_Margin, optuna.pruners.SuccessiveHalvingPruner):
    """Optuna's SuccessiveHalvingPruner (a trial goes on from a rung only in the top 1/eta of the values there),
    with the noise margin on that rung's cut. A trial the margin spares goes on to the next rung."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        self.last = None
        if not super().prune(study, trial):
            return False
        step = trial.last_step  # a step was reported: the pruner's own rule found one to cut
        value = trial.intermediate_values[step] if step is not None else math.nan
        if math.isnan(value):
            return True
        competing = compat.rung_values(study, trial)
        eta = compat.reduction_factor(self)
        keep = max(len(competing) // eta, 1)  # Optuna's promotable index, counted from the best
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        cut = sorted(competing, reverse=maximize)[keep - 1]
        return self._margin(study, trial, value, cut)


class MarginHyperbandPruner(optuna.pruners.HyperbandPruner):
    """Optuna's HyperbandPruner whose brackets are MarginSuccessiveHalvingPruners. A HyperbandPruner still, so
    that TPE models each bracket apart, as Optuna intends."""

    last: Optional[Verdict] = None

    def _try_initialization(self, study):
        super()._try_initialization(study)
        compat.replace_brackets(self, MarginSuccessiveHalvingPruner)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        brackets = compat.brackets(self)
        for p in brackets:
            p.last = None
        pruned = super().prune(study, trial)
        self.last = next((p.last for p in compat.brackets(self) if p.last is not None), None)
        return pruned


def make_pruner(name: str, budget: Budget) -> optuna.pruners.BasePruner:
    """--pruner: Optuna's median, successive halving (its reduction factor 4) or Hyperband (3), each keeping its
    own rule with the noise margin on its cut; none prunes before warmup_epochs; "none": Optuna's NopPruner."""
    epochs = budget.epochs or 1
    warmup = warmup_epochs(epochs)
    if name == "median":
        return MarginMedianPruner(n_startup_trials=pruner_startup(budget), n_warmup_steps=warmup)
    if name == "successive-halving":
        return MarginSuccessiveHalvingPruner(min_resource=warmup)
    if name == "hyperband":
        return MarginHyperbandPruner(min_resource=warmup, max_resource=max(epochs, warmup))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(name)
