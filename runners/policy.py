"""The search policy: who proposes a trial, when the proposals start to model, which pruner stops a trial and by
what margin. Both engines build their sampler and pruner here, from the search's budget, and nowhere else.

    Budget(max_trials, time_budget, fixed, epochs, parallel)    what the search may spend, and its fixed trials
    startup_trials(budget)       trials TPE proposes at random (or from the prior) before it models
    pruner_startup(budget)       finished trials before the median pruner stops any
    make_sampler(name, seed, budget, defaults)     --sampler: tpe, tpe-prior (piBO), random, nsga2
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
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import optuna
from scipy import stats

from lyrics_cifar_search.runners import compat

# A trial is pruned only this many standard errors of its own validation score beyond its pruner's cut.
NOISE_Z = 2.0
# TPE proposes at random for at most Optuna's own default start-up.
OPTUNA_STARTUP = 10
# The median pruner waits for at most Optuna's own default of finished trials.
OPTUNA_PRUNER_STARTUP = 5
# Trials a time-budgeted search runs at random beyond its fixed ones before TPE models: its size is not known
# when it starts, so its start-up is the smallest that gives TPE evidence of its own.
TIMED_EXTRA_STARTUP = 2

Defaults = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]]]


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


class Prior:
    """A prior on the family's defaults (the earlier study's configuration), parameter by parameter: a number
    from a normal around its default, a quarter of its range wide (on the log scale where it has one),
    truncated to the range, never clipped; a choice is its default with probability DEFAULT_MASS plus its share
    of the rest, spread evenly. A parameter without a default (or whose default is outside its distribution)
    is uniform."""

    SPREAD = 0.25
    DEFAULT_MASS = 0.5

    def __init__(self, defaults: Defaults):
        self._defaults = defaults  # a dict, or a function giving it (a Keras space is known only later)

    def default(self, name: str, dist: optuna.distributions.BaseDistribution):
        defaults = self._defaults() if callable(self._defaults) else self._defaults
        if name not in defaults:
            return None
        value = defaults[name]
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            return value if value in dist.choices else None
        if not isinstance(dist, (optuna.distributions.FloatDistribution, optuna.distributions.IntDistribution)):
            return None
        try:
            return value if dist.low <= float(value) <= dist.high else None
        except (TypeError, ValueError):
            return None

    @staticmethod
    def _scale(dist):
        """(lower, upper, to-scale, from-scale) of a numeric distribution's continuous stand-in: a stepped
        range widened by half a step each side, so that rounding gives each end its share."""
        half = 0.5 * (dist.step or 0) if not dist.log else (0.5 if isinstance(dist, optuna.distributions
                                                                              .IntDistribution) else 0.0)
        low, high = float(dist.low) - half, float(dist.high) + half
        if dist.log:
            return math.log(max(low, 1e-300)), math.log(high), math.log, math.exp
        return low, high, float, float

    def _normal(self, dist, default):
        lo, hi, to, _ = self._scale(dist)
        scale = max(self.SPREAD * (hi - lo), 1e-12)
        return stats.truncnorm((lo - to(float(default))) / scale, (hi - to(float(default))) / scale,
                               loc=to(float(default)), scale=scale)

    def draw(self, name, dist, rng: np.random.RandomState):
        """A value of `dist` drawn from the prior (None: no default, draw it uniformly)."""
        default = self.default(name, dist)
        if default is None:
            return None
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            return dist.choices[int(rng.choice(len(dist.choices), p=self._choice_probs(dist, default)))]
        _, _, _, back = self._scale(dist)
        x = back(float(self._normal(dist, default).rvs(random_state=rng)))
        step = dist.step if not dist.log else (1 if isinstance(dist, optuna.distributions.IntDistribution) else None)
        if step:
            x = dist.low + round((x - dist.low) / step) * step
        x = min(max(x, dist.low), dist.high)  # only a rounding's last bits: the draw itself is truncated
        return int(round(x)) if isinstance(dist, optuna.distributions.IntDistribution) else float(x)

    def _choice_probs(self, dist, default):
        k = len(dist.choices)
        probs = np.full(k, (1 - self.DEFAULT_MASS) / k)
        probs[dist.choices.index(default)] += self.DEFAULT_MASS
        return probs

    def log_pdf(self, samples: Mapping[str, np.ndarray],
                space: Mapping[str, optuna.distributions.BaseDistribution]) -> np.ndarray:
        """log pi(x) of TPE's candidates (samples: each parameter's internal representation), up to a constant
        per parameter (the truncation's normaliser, which no comparison of candidates sees)."""
        total = np.zeros(len(next(iter(samples.values()))) if samples else 0)
        for name, values in samples.items():
            dist = space.get(name)
            default = self.default(name, dist) if dist is not None else None
            if default is None:
                continue
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                total += np.log(self._choice_probs(dist, default)[np.asarray(values, dtype=int)])
            else:
                x = np.asarray(values, dtype=float)
                total += self._normal(dist, default).logpdf(np.log(np.maximum(x, 1e-300)) if getattr(dist, "log", False) else x)
        return total


class _PriorDraws(optuna.samplers.RandomSampler):
    """TPE's start-up sampler under the prior: each parameter drawn from the prior (uniformly where it has
    none), as piBO's initial design is."""

    def __init__(self, prior: Prior, seed):
        super().__init__(seed=seed)
        self.prior = prior

    def sample_independent(self, study, trial, param_name, param_distribution):
        value = self.prior.draw(param_name, param_distribution, compat.random_state(self))
        if value is None:
            return super().sample_independent(study, trial, param_name, param_distribution)
        return value


class PriorTPE(optuna.samplers.TPESampler):
    """piBO (Hvarfner et al. 2022, "piBO: Augmenting Acquisition Functions with User Beliefs for Bayesian
    Optimization") on Optuna's TPE: the start-up trials are drawn from the prior pi, and afterwards TPE's
    acquisition log l(x) - log g(x) is weighted by pi(x) ** (beta / n), n the finished trials of the whole
    search (Hyperband's brackets together), so the prior fades as evidence comes in. Neither Keras Tuner nor
    Optuna has a prior."""

    def __init__(self, prior: Prior, beta: float, **kwargs):
        super().__init__(**kwargs)
        self.prior, self.beta = prior, beta
        compat.set_tpe_startup_sampler(self, _PriorDraws(prior, kwargs.get("seed")))
        self._space: dict[str, optuna.distributions.BaseDistribution] = {}
        self._finished = 0

    def prior_weight(self) -> float:
        """The exponent on pi for the next proposal: beta / n."""
        return self.beta / max(self._finished, 1)

    def _sample(self, study, trial, search_space):
        self._space, self._finished = search_space, compat.finished_in_whole_study(study)
        return super()._sample(study, trial, search_space)

    def _compute_acquisition_func(self, samples, mpe_below, mpe_above):
        acquisition = super()._compute_acquisition_func(samples, mpe_below, mpe_above)
        return acquisition + self.prior_weight() * self.prior.log_pdf(samples, self._space)


class NearDefaults(optuna.samplers.BaseSampler):
    """The first --sampler tpe-prior (before piBO), kept so that a search recorded with it resumes with it: each
    new trial is, with probability 2 / (2 + n) after n finished trials, drawn near the defaults, else by TPE."""

    PRIOR_WEIGHT = 2.0

    def __init__(self, base, defaults, seed):
        self.base, self._defaults = base, defaults
        self._rng = np.random.default_rng(seed)
        self._near = {}  # trial number -> drawn near the defaults

    def _is_near(self, study, trial):
        if trial.number not in self._near:
            n = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                               optuna.trial.TrialState.PRUNED)))
            self._near[trial.number] = bool(self._rng.random() < self.PRIOR_WEIGHT / (self.PRIOR_WEIGHT + n))
        return self._near[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return {} if self._is_near(study, trial) else self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        defaults = self._defaults() if callable(self._defaults) else self._defaults
        if not self._is_near(study, trial) or param_name not in defaults:
            return self.base.sample_independent(study, trial, param_name, param_distribution)
        return self.near(param_distribution, defaults[param_name])

    def near(self, dist, default):
        d = optuna.distributions
        if isinstance(dist, d.CategoricalDistribution):
            if default in dist.choices and self._rng.random() < 0.5:
                return default
            return dist.choices[int(self._rng.integers(len(dist.choices)))]
        low, high, log = float(dist.low), float(dist.high), dist.log
        lo, hi, at = (math.log(low), math.log(high), math.log(min(max(default, low), high))) if log else \
            (low, high, min(max(float(default), low), high))
        x = min(max(self._rng.normal(at, (hi - lo) / 6), lo), hi)
        x = math.exp(x) if log else x
        step = getattr(dist, "step", None)
        if step:
            x = low + round((x - low) / step) * step
        if isinstance(dist, d.IntDistribution):
            x = int(round(x))
        return min(max(x, dist.low), dist.high)

    def before_trial(self, study, trial):
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self):
        self.base.reseed_rng()
        self._rng = np.random.default_rng()


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

    def prune(self, study, trial):
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

    def prune(self, study, trial):
        self.last = None
        if not super().prune(study, trial):
            return False
        value = trial.intermediate_values[trial.last_step]
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

    def prune(self, study, trial):
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
