"""A Keras Tuner oracle backed by an Optuna study (the default tuner): Optuna proposes, prunes and records.

Keras Tuner still builds and trains every model (the hypermodel's `build(hp)`,
the suite's tuner and trial loop); this oracle only answers its public
questions through the search's study (runners/record.py: results/optuna.db):

- create_trial: Keras Tuner's, with the trial's id its number in the study; a
  new trial's values come from populate_space (a subclass's override too), and
  max_trials counts trials begun, as Keras Tuner counts them; a trial run again
  (after a kill, a crash with retries left, a silent worker) is a new trial
  with the same values.
- populate_space: the study is asked for a trial and each active Keras Tuner
  hyperparameter is suggested with its Optuna distribution (log floats stay
  log, ints ints, choices categorical; a conditional one only where its parent
  is active). The family's fixed first trials (trial 0: the earlier study's
  configuration) are enqueued, so the study records them too.
- Keras Tuner's Oracle arguments (max_retries_per_trial,
  max_consecutive_failed_trials, ...) are taken; the stop after failures in a
  row (ConsecutiveFailures, Keras Tuner's RuntimeError) comes once the last
  failure is recorded.
- update_trial (study_reports.py): each epoch's objective is reported (the learning curve); when
  the pruner says so the trial is told to stop ("STOPPED"): trained no further,
  recorded as PRUNED, never a candidate for best/. The fixed first trials are
  never pruned.
- end_trial: the study is told COMPLETE (with every metric as a user
  attribute), PRUNED or FAIL.

The sampler and the pruner are the search policy's (runners/policy.py), made from
the search's budget: --max-trials or --time-budget, the family's fixed first
trials, its epochs. Each epoch's value is the one the trial would be scored on
if it ended there (tuner.ReportEachEpoch), so the pruner watches what the study
is told.
Keras Tuner's contract is kept where the study could break it: a proposal
already tried is asked again, up to Keras Tuner's `_max_collisions`, and then
the space is used up and the search stops; the overrides are `@synchronized`.
"""


from typing import Any

import keras_tuner as kt
import optuna

from lyrics_cifar_search.runners import compat, policy, record
from lyrics_cifar_search.runners.keras_search.oracles import (BaselineFirst, KerasRecord, TrialStatus, are_defaults,
                                                              default_values, number, remove_trial_files, user_values)
from lyrics_cifar_search.suite_common.failpoints import failpoint
# each epoch's report and the trial's end (study_reports.py)
from lyrics_cifar_search.runners.keras_search.study_reports import StudyReports



class _StudyProposals(StudyReports, KerasRecord, kt.Oracle):
    """Keras Tuner's Oracle whose values come from an Optuna study (see the module's docstring)."""

    def __init__(self, objective, max_trials, seed, *, storage_url, study_name, epochs, sampler="tpe",
                 pruner="median", parallel=False, first_trials=None, time_budget=None, objectives=None,
                 **oracle_kwargs):
        # oracle_kwargs: Keras Tuner's own Oracle arguments (max_retries_per_trial, max_consecutive_failed_trials,
        # hyperparameters, allow_new_entries, tune_new_entries)
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **oracle_kwargs)
        self.storage_url, self.study_name, self.epochs = storage_url, study_name, epochs
        # a Pareto search's objectives, told to the study together (Keras Tuner's objective is the first)
        self.objectives = [tuple(o) for o in objectives] if objectives else None
        self.time_budget = time_budget  # seconds (--time-budget): the policy's start-ups come from it
        self.sampler_name, self.pruner_name, self.parallel = sampler, pruner, parallel
        if first_trials is not None:  # before the study opens: the pruner's and sampler's start-up count them
            self.first_trials = tuple(first_trials)
        self._study, self._asked, self._reported, self.pruned = None, {}, {}, set()
        self._rdb: Any = None  # the study's storage, once the study is open
        self._proposed = {}  # populate_space's proposals, by the trial id it was given, until create_trial takes them
        self.fixed_numbers = []  # ids of the fixed first trials (and of their runs again)

    @property
    def study(self):
        """The study, opened on first use (Keras Tuner saves and reloads the oracle as JSON: the study stays out
        of that). Trials a killed run left RUNNING are failed: Keras Tuner runs its trial again, under a new ask."""
        if self._study is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = self._rdb = record.open_storage(None, self.storage_url, heartbeat=False)
            done = record.trials_on_record(storage, self.study_name)
            budget = self.budget()
            self._study = optuna.create_study(
                study_name=self.study_name, storage=storage,
                directions=record.directions(self.objectives or [(self.objective.name, self.objective.direction)]),
                load_if_exists=True,
                # a resume does not replay: the seed moves on with the trials on record
                sampler=policy.make_sampler(self.sampler_name, (self.seed or 0) + done, budget,
                                            pruner=self.pruner_name,
                                            defaults=lambda: self._study_params(
                                                default_values(self.hyperparameters.space)),
                                            legacy_prior=record.legacy_prior(storage, self.study_name)),
                pruner=policy.make_pruner(self.pruner_name, budget))
            self.check_identity(self._study)  # before the RUNNING trials below are failed
            self._study.set_user_attr("policy", policy.summary(budget, self.sampler_name, self.pruner_name))
            ended = {number(tid): tid for tid in self.end_order}
            for t in self._study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                tid = ended.get(t.user_attrs.get("trial_id", -1))
                if tid is not None:  # killed after Keras Tuner saved its end: record_missing tells this attempt
                    self._asked[tid] = compat.running_trial(self._study, self._storage_key(t.number))
                    continue
                record.cut_short(self._study, t.number)  # FAIL, left out of the tables: it runs again
        return self._study

    def budget(self):
        """The search's budget, as the policy reads it."""
        return policy.Budget(max_trials=self.max_trials, time_budget=self.time_budget, fixed=len(self.first_trials),
                             epochs=self.epochs, parallel=self.parallel)

    def record_missing(self):
        """After a kill: a trial Keras Tuner ended whose study trial was never told is told now, on that study
        trial (its number stays its id); any other ended trial the study lacks goes in as KerasRecord adds it."""
        self.study  # opened on first use
        for tid in [t for t in self._asked if t in self.end_order]:
            self._tell(tid)
        super().record_missing()

    @kt.synchronized
    def create_trial(self, tuner_id):
        """Keras Tuner's Oracle.create_trial (1.4.8): a trial Keras Tuner would run again goes first, else the values
        come from populate_space, Keras Tuner's documented hook (a subclass's override too); at max_trials the
        tuner is told STOPPED. One change: a trial's id is its number in the study, so trials.csv, the histories,
        best/ and the Optuna dashboard name each trial alike, after a kill too. The id populate_space is given is
        the study's next number, provisional: a proposal already tried (never trained) moves it on. A trial Keras
        Tuner would run again under its old id (its run was killed, it crashed with retries left, its worker
        went silent) runs as a new trial with the same values, as Optuna's retry callback runs one again; the cut
        attempt stays in the study, FAIL and marked interrupted, out of the tables."""
        if tuner_id in self.ongoing_trials:  # a worker asking again gets its own trial back
            return self.ongoing_trials[tuner_id]
        self.tuner_ids.add(tuner_id)
        again = self._take_retry()
        if again is not None:
            failpoint("retry-taken")  # the trial taken to run again; the oracle's saved state still names it
            (asked, _), values, fixed = self._ask_for(again["values"]), again["values"], again["fixed"]
        elif self.max_trials and len(self.trials) >= self.max_trials:  # Keras Tuner's count: trials begun
            return self._not_started(tuner_id, TrialStatus.STOPPED)
        else:
            provisional = self._trial_id(self._next_number())
            response = self.populate_space(provisional)
            values = response.get("values")
            if response.get("status") != TrialStatus.RUNNING or values is None:  # used up, or Hyperband's IDLE
                self._drop_proposal(provisional)
                return self._not_started(tuner_id, response.get("status", TrialStatus.STOPPED))
            asked, fixed = self._study_trial_for(provisional, values)
        trial_id = self._trial_id(asked.number)
        asked.set_user_attr("trial_id", asked.number)
        if fixed and are_defaults(values, self.hyperparameters.space):
            asked.set_user_attr("is_baseline", True)
        hps = self.hyperparameters.copy()
        hps.values = values
        trial = kt.engine.trial.Trial(hps, trial_id=trial_id, status=TrialStatus.RUNNING)
        self._asked[trial_id] = asked
        if fixed:
            self.fixed_numbers.append(asked.number)
        if again is not None:
            compat.run_times(self)[trial_id] = again["run_times"]  # Keras Tuner's retries stay counted
        compat.start_trial(self, tuner_id, trial)
        if again is not None:
            # Its folder and partial history go only now that the saved state no longer names it: a kill before
            # this leaves them for the reload to find (and the resume's reconcile to clear)
            remove_trial_files(self._project_dir, lambda n: n == again["number"])
        return trial

    def _trial_id(self, n):
        return f"{n:0{len(str(self.max_trials))}d}"  # zero-padded like Keras Tuner's own ids

    def _next_number(self):
        """The number the study gives its next trial."""
        self.study  # opened on first use
        return len(self._rdb.get_all_trials(self._rdb.get_study_id_from_name(self.study_name), deepcopy=False))

    def _not_started(self, tuner_id, status):
        """Keras Tuner's answer when no trial starts (STOPPED: the search is over; IDLE: wait)."""
        if status == TrialStatus.STOPPED:
            self.tuner_ids.discard(tuner_id)
        return kt.engine.trial.Trial(self.hyperparameters.copy(), trial_id=str(len(self.trials)), status=status)

    def _study_trial_for(self, provisional, values):
        """(the study's trial, whether it is a fixed first trial) for the values populate_space answered: the trial
        this oracle's own proposal asked for, or, where a subclass answered other values, a study trial with
        those (the proposal it replaced is failed, marked replaced: never trained, not a trial)."""
        proposal = self._proposed.get(provisional)
        if proposal is not None:
            asked, proposed, fixed = proposal
            if self._study_params(user_values(proposed)) == self._study_params(user_values(values)):
                del self._proposed[provisional]
                return asked, fixed
        self._drop_proposal(provisional)
        asked, _ = self._ask_for(values)
        return asked, False

    def _drop_proposal(self, provisional):
        proposal = self._proposed.pop(provisional, None)
        if proposal is not None:  # asked, never run
            proposal[0].set_user_attr("replaced", True)
            self.study.tell(proposal[0], state=optuna.trial.TrialState.FAIL)

    def _take_retry(self):
        """The trial Keras Tuner would run again next, taken out of its trials, as {number, values, fixed,
        run_times}; None when there is none. Its folder and history go once the new trial is saved."""
        queue = compat.retry_queue(self)
        while queue:
            old = queue.pop()
            if old in self.end_order or old not in self.trials:
                continue  # it ended after all (a worker thought dead): it does not run twice
            fixed = self.is_fixed(old)
            self.forget_attempt(old)
            trial = self.trials.pop(old)
            self.start_order[:] = [t for t in self.start_order if t != old]
            if number(old) in self.fixed_numbers:
                self.fixed_numbers.remove(number(old))
            return {"number": number(old), "values": dict(trial.hyperparameters.values), "fixed": fixed,
                    "run_times": compat.run_times(self).pop(old, 0)}
        return None

    def populate_space(self, trial_id):
        """Keras Tuner's documented hook: the values of a new trial `trial_id` (the study's next number), from the
        study (the next fixed first trial, else the sampler's proposal); STOPPED when the space is used up."""
        proposal = self._propose()
        if proposal is None:
            return {"status": TrialStatus.STOPPED, "values": None}
        self._proposed[trial_id] = proposal
        return {"status": TrialStatus.RUNNING, "values": proposal[1]}

    def _propose(self):
        """(the study's trial, its values, whether it is a fixed first trial) for the next trial: the next fixed
        first trial, else the sampler's proposal; None when the space is used up."""
        n = len(self.trials)
        if n < len(self.first_trials):  # the fixed first trial's values: BaselineFirst (the subclass) checks them
            (asked, values), fixed = self._ask_for(self.fixed_values(n)), True
        else:
            asked = self.study.ask()
            values, fixed = self._suggest(asked), False
            if compat.already_tried(self, values):
                # Keras Tuner's rule (Oracle._random_values): a configuration already tried is not run again.
                # The sampler's proposal is dropped (never trained; left out of the tables, record.rows) and
                # random ones are drawn instead, as Keras Tuner's random oracle draws them (TPE on a small
                # space proposes its best point again and again); after _max_collisions in a row already
                # tried, the space is used up and the search stops.
                asked.set_user_attr("duplicate", True)
                self.study.tell(asked, state=optuna.trial.TrialState.FAIL)
                values = self._untried_random_values(n)
                if values is None:
                    return None
                asked, values = self._ask_for(values)
        return asked, values, fixed

    def _ask_for(self, values):
        """A study trial with these values (Keras Tuner's tuner/ keys left out): queued, asked, and each active
        hyperparameter suggested; returns (the trial, its values as suggested)."""
        self.study.enqueue_trial(self._study_params(user_values(values)), skip_if_exists=False)
        asked = self.study.ask()
        return asked, self._suggest(asked)

    def _suggest(self, asked):
        """Each active hyperparameter, in the order the hypermodel declared them, from the Optuna trial (asking
        again for one already suggested returns its value)."""
        names = record.optuna_names(self.hyperparameters.space)
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            dist, name = record.keras_distribution(hp), names[id(hp)]
            if isinstance(dist, optuna.distributions.FloatDistribution):
                value = asked.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                value = asked.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, optuna.distributions.CategoricalDistribution):
                value = asked.suggest_categorical(name, list(dist.choices))
            else:  # keras_distribution refuses (UserError) any other kind before it samples
                raise TypeError(f"hyperparameter {hp.name!r} has no Optuna distribution")
            hps.values[hp.name] = value
        return dict(hps.values)

    def _untried_random_values(self, n):
        """Random values of the active hyperparameters not tried before (None after _max_collisions tries)."""
        for attempt in range(compat.max_collisions(self) + 1):
            hps, values = kt.HyperParameters(), {}
            for i, hp in enumerate(self.hyperparameters.space):
                hps.merge([hp])
                if hps.is_active(hp):
                    values[hp.name] = hps.values[hp.name] = hp.random_sample(
                        (self.seed or 0) + 7919 * n + 104729 * attempt + i)
            if not compat.already_tried(self, values):
                return values
        return None

    def _study_params(self, values):
        """Keras Tuner's values of the active hyperparameters under the study's names (record.optuna_names)."""
        names = record.optuna_names(self.hyperparameters.space)
        hps, params = kt.HyperParameters(), {}
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hp.name in values:
                hps.values[hp.name] = values[hp.name]
                if hps.is_active(hp):
                    params[names[id(hp)]] = values[hp.name]
        return params

    def _optuna_trial(self, trial_id):
        """The study's trial for a Keras Tuner trial; a trial run again after a resume gets a new ask with the
        same values."""
        if trial_id not in self._asked:
            asked, _ = self._ask_for(self.trials[trial_id].hyperparameters.values)
            asked.set_user_attr("trial_id", number(trial_id))
            self._asked[trial_id] = asked
        return self._asked[trial_id]

    def forget_attempt(self, trial_id):
        """A trial whose worker went silent runs again on another (distributed.ChiefServicer.requeue_stale): its
        first attempt is failed in the study (interrupted: left out of the tables), and the next attempt starts
        afresh, under a new ask, with its own epochs and unpruned."""
        asked = self._asked.pop(trial_id, None)
        if asked is not None:
            record.cut_short(self.study, asked.number)
        self._reported.pop(trial_id, None)
        self.pruned.discard(trial_id)

    def _add_late_values(self, asked, hps):
        """Hyperparameters a hypermodel declares in fit() (e.g. batch_size) join the space only once a trial has
        trained: the first trial's values of them go into its study trial at its end, with their
        distributions (later trials are asked for them)."""
        trial_key = self._storage_key(asked.number)
        names = record.optuna_names(hps.space)
        for hp in hps.space:
            value, name = hps.values.get(hp.name), names[id(hp)]
            dist = record.keras_distribution(hp)
            if name in asked.params or value is None or dist is None or not hps.is_active(hp):
                continue
            self._rdb.set_trial_param(trial_key, name, dist.to_internal_repr(value), dist)

    def _storage_key(self, number):
        """The storage's own id of the study's trial `number` (what its set_trial_* methods take)."""
        self.study  # opened on first use
        return self._rdb.get_trial_id_from_study_id_trial_number(self._rdb.get_study_id_from_name(self.study_name),
                                                                  number)

    def is_fixed(self, trial_id):
        """One of the family's fixed first trials (the baseline): trained to the full budget, never pruned."""
        return number(trial_id) in self.fixed_numbers

    def is_baseline(self, trial_id):
        """Fixed first trial 0 (every hyperparameter at its default), also when it ran again under a new id."""
        return self.is_fixed(trial_id) and are_defaults(self.trials[trial_id].hyperparameters.values,
                                                        self.hyperparameters.space)

    def get_state(self):
        return {**super().get_state(), "fixed_numbers": self.fixed_numbers}

    def set_state(self, state):
        super().set_state(state)
        # a state saved before fixed_numbers: the fixed trials were the first ones begun
        first = sorted(map(number, self.start_order))[:len(self.first_trials)]
        self.fixed_numbers = list(state.get("fixed_numbers", first))


class StudyOracle(BaselineFirst, _StudyProposals):
    pass
