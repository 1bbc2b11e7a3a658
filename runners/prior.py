"""The prior on a family's defaults (the earlier study's configuration) that --sampler tpe-prior weighs TPE's
proposals by (piBO: PriorTPE), its draws for TPE's start-up, and the first tpe-prior, a mixture
(NearDefaults), with which searches recorded by it resume. runners/policy.py builds the samplers."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Union

import numpy as np
import optuna
from scipy import stats

from lyrics_cifar_search.runners import compat

Defaults = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]]]


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
