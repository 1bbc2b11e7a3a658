"""A Keras Tuner oracle backed by an Optuna study (the default tuner): Optuna proposes, prunes and records.

Keras Tuner still builds and trains every model (the hypermodel's `build(hp)`,
the suite's tuner and trial loop); this oracle only answers its public
questions through the search's study (runners/record.py: results/optuna.db):

- populate_space: the study is asked for a trial and each active Keras Tuner
  hyperparameter is suggested with its Optuna distribution (log floats stay
  log, ints ints, choices categorical; a conditional one only where its parent
  is active). The family's fixed first trials (trial 0: the earlier study's
  configuration) are enqueued, so the study records them too.
- update_trial: each epoch's objective is reported (the learning curve); when
  the pruner says so the trial is told to stop ("STOPPED"): trained no further,
  recorded as PRUNED, never a candidate for best/. The fixed first trials are
  never pruned.
- end_trial: the study is told COMPLETE (with every metric as a user
  attribute), PRUNED or FAIL.

Samplers: TPE (multivariate, grouped for conditional spaces, seeded) or random.
Pruners: Optuna's median, successive halving and Hyperband, or none; none
prunes before `warmup` epochs.
"""


import keras_tuner as kt
import optuna

from runners import record, trials_table
from runners.keras_search.oracles import EPOCH, BaselineFirst, KerasRecord, error_of, metrics_of, number
from suite_common.failpoints import failpoint


def warmup_epochs(epochs):
    """Epochs every trial trains before a pruner may stop it: a fifth of the budget, at least 1."""
    return max(1, epochs // 5)


def median_after(max_trials, fixed):
    """Finished trials before the median pruner stops any: a fifth of the search, from 2 up to Optuna's default 5,
    and always more than the family's fixed first trials, so that a searched trial is part of the bar.
    With the fixed trials alone as the bar (cifar_cnn's baseline and skip model) it pruned 36 of 39 trials of a
    5-minute search (bench/README.md, time_to_accuracy.py); with 5 for a 10-trial search half of it could not be
    pruned and the README's first command took 138 s instead of 86 s (bench/README.md, first_run.py)."""
    return max(fixed + 1, min(5, max(2, max_trials // 5)))


def make_pruner(name, epochs, startup):
    warmup = warmup_epochs(epochs)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup, max_resource=max(epochs, warmup))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(name)


class _StudyProposals(KerasRecord, kt.Oracle):
    """Keras Tuner's Oracle whose values come from an Optuna study (see the module's docstring)."""

    def __init__(self, objective, max_trials, seed, *, storage_url, study_name, epochs, sampler="tpe",
                 pruner="median"):
        super().__init__(objective=objective, max_trials=max_trials, seed=seed)
        self.storage_url, self.study_name, self.epochs = storage_url, study_name, epochs
        self.sampler_name, self.pruner_name = sampler, pruner
        self._study, self._rdb, self._asked, self._reported, self.pruned = None, None, {}, {}, set()

    @property
    def study(self):
        """The study, opened on first use (Keras Tuner saves and reloads the oracle as JSON: the study stays out
        of that). Trials a killed run left RUNNING are failed: Keras Tuner runs its trial again, under a new ask."""
        if self._study is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            storage = self._rdb = record.open_storage(None, self.storage_url, heartbeat=False)
            done = record.trials_on_record(storage, self.study_name)
            self._study = optuna.create_study(
                study_name=self.study_name, storage=storage, direction=record.direction(self.objective.direction),
                load_if_exists=True,
                sampler=record.make_sampler(self.sampler_name, (self.seed or 0) + done),  # a resume does not replay
                pruner=make_pruner(self.pruner_name, self.epochs,
                                  median_after(self.max_trials, len(self.first_trials))))
            for t in self._study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                storage.set_trial_user_attr(self._storage_key(t.number), "interrupted", True)  # left out of tables
                self._study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        return self._study

    def populate_space(self, trial_id):
        first = len(self.trials) < len(self.first_trials)
        if first:  # the fixed first trial's values: BaselineFirst (the subclass) puts them in place
            self.study.enqueue_trial(self.fixed_values(len(self.trials)), skip_if_exists=False)
        asked = self.study.ask()
        asked.set_user_attr("trial_id", number(trial_id))
        if first and len(self.trials) == 0:
            asked.set_user_attr("is_baseline", True)
        self._asked[trial_id] = asked
        return {"status": "RUNNING", "values": self._suggest(asked)}

    def _suggest(self, asked):
        """Each active hyperparameter, in the order the hypermodel declared them, from the Optuna trial."""
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            dist = record.keras_distribution(hp)
            if isinstance(dist, optuna.distributions.FloatDistribution):
                value = asked.suggest_float(hp.name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, optuna.distributions.IntDistribution):
                value = asked.suggest_int(hp.name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, optuna.distributions.CategoricalDistribution):
                value = asked.suggest_categorical(hp.name, list(dist.choices))
            else:
                value = hp.default
            hps.values[hp.name] = value
        return dict(hps.values)

    def _optuna_trial(self, trial_id):
        """The study's trial for a Keras Tuner trial; a trial run again after a resume gets a new ask with the
        same values."""
        if trial_id not in self._asked:
            values = self.trials[trial_id].hyperparameters.values
            self.study.enqueue_trial({k: v for k, v in values.items() if not k.startswith("tuner/")},
                                     skip_if_exists=False)
            asked = self.study.ask()
            asked.set_user_attr("trial_id", number(trial_id))
            self._suggest(asked)
            self._asked[trial_id] = asked
        return self._asked[trial_id]

    def _add_late_values(self, asked, hps):
        """Hyperparameters a hypermodel declares in fit() (e.g. batch_size) join the space only once a trial has
        trained: the first trial's values of them go into its study trial at its end, with their
        distributions (later trials are asked for them)."""
        trial_key = self._storage_key(asked.number)
        for hp in hps.space:
            value = hps.values.get(hp.name)
            dist = record.keras_distribution(hp)
            if hp.name in asked.params or value is None or dist is None or not hps.is_active(hp):
                continue
            self._rdb.set_trial_param(trial_key, hp.name, dist.to_internal_repr(value), dist)

    def _storage_key(self, number):
        """The storage's own id of the study's trial `number` (what its set_trial_* methods take)."""
        self.study  # opened on first use
        return self._rdb.get_trial_id_from_study_id_trial_number(self._rdb.get_study_id_from_name(self.study_name),
                                                                  number)

    def is_fixed(self, trial_id):
        """One of the family's fixed first trials (the baseline): trained to the full budget, never pruned."""
        order = sorted(self.trials, key=lambda t: int(t))
        return order.index(trial_id) < len(self.first_trials) if trial_id in order else False

    def update_trial(self, trial_id, metrics, step=0):
        """Keras Tuner's update, and an epoch's objective (sent as "epoch/<objective>" by the tuner's
        ReportEachEpoch) into the study, each epoch once. Like Keras Tuner's, it answers with the trial (a copy
        whose status is "STOPPED" when the pruner stops it here): a worker's chief sends it over gRPC."""
        if EPOCH + self.objective.name not in (metrics or {}):  # the trial's results (Keras Tuner's own update)
            return super().update_trial(trial_id, metrics, step)
        # an epoch's report is the study's alone: Keras Tuner's trial keeps only its results
        value = metrics[EPOCH + self.objective.name]
        reported = self._reported.setdefault(trial_id, set())
        if trial_id not in self.pruned and step not in reported and trials_table.is_score(value):
            reported.add(step)
            asked = self._optuna_trial(trial_id)
            asked.report(float(value), step)
            # asked for every trial, fixed ones too: successive halving records a trial's rung value when asked
            if asked.should_prune() and not self.is_fixed(trial_id):
                self.pruned.add(trial_id)
        kept = self.trials[trial_id]
        return kt.engine.trial.Trial(kept.hyperparameters, trial_id=trial_id,
                                     status="STOPPED" if trial_id in self.pruned else kept.status)

    def end_trial(self, trial):
        trial_id = trial.trial_id
        if trial_id in self.pruned and trial.status == "COMPLETED":
            trial.status = "STOPPED"  # recorded as PRUNED, never a best/ candidate
        super().end_trial(trial)
        failpoint("oracle-saved")  # Keras Tuner's state has the trial; the study not yet
        asked = self._optuna_trial(trial_id)
        kept = self.trials[trial_id]
        self._add_late_values(asked, kept.hyperparameters)
        if self.is_baseline(trial_id):  # also when run again after a kill, under a new ask
            asked.set_user_attr("is_baseline", True)
        metrics = {k: v for k, v in metrics_of(kept).items() if trials_table.is_score(v)}
        for name, value in metrics.items():
            asked.set_user_attr(name, float(value))
        value = metrics.get(self.objective.name)
        if kept.status == "COMPLETED" and value is not None:
            self.study.tell(asked, float(value))
        elif trial_id in self.pruned:
            self.study.tell(asked, state=optuna.trial.TrialState.PRUNED)
        else:
            if error_of(kept):
                asked.set_user_attr("error", error_of(kept))
            self.study.tell(asked, state=optuna.trial.TrialState.FAIL)
        self._asked.pop(trial_id, None)
        self._reported.pop(trial_id, None)


class StudyOracle(BaselineFirst, _StudyProposals):
    pass
