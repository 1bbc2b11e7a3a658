"""The search policy, round three (issue 48): a time-budgeted search that models early, pruners that keep their
own rule with the noise margin on its cut, a prior that is a prior (piBO: truncated draws, no exact repeats, its
decay over the whole search, every generator reseeded, the first tpe-prior kept for the searches made with it),
and the engines' retries through Optuna's RetryHeartbeatStaleTrialCallback (RetryFailedTrialCallback's name
since Optuna 4.9)."""

import math
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest

from lyrics_cifar_search.runners import compat, optuna_engine, policy, record
from lyrics_cifar_search.runners.policy import Budget
from lyrics_cifar_search.runners.search import cli

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- a time-budgeted search models early -----------------------------------------------------------------------

def test_a_time_budget_sets_the_start_up_not_the_stand_in_max_trials():
    # --time-budget 90s --max-trials 1000: the start-up was Optuna's 10 and the median pruner's 5
    timed = Budget(max_trials=1000, time_budget=90, fixed=1, epochs=10)
    assert policy.startup_trials(timed) == 3 and policy.pruner_startup(timed) == 2
    assert policy.startup_trials(Budget(1000, time_budget=90, fixed=2)) == 4  # cifar_cnn: two fixed trials
    assert policy.sampler_startup(Budget(1000, time_budget=90, fixed=1, epochs=50), "hyperband") == 2
    assert policy.startup_trials(Budget(1000, fixed=1)) == 10  # a trial count alone: Optuna's 10 at most


def _proposals(res, family="lyrics_tfidf_logreg"):
    study = optuna.load_study(study_name=family, storage=f"sqlite:///{res / 'optuna.db'}")
    return [t.params for t in sorted(study.trials, key=lambda t: t.number) if t.state.name == "COMPLETE"]


@pytest.mark.slow
def test_a_time_budgeted_tfidf_search_departs_from_random_search_by_its_fourth_trial(tmp_path, small_lyrics):
    """TPE and random search with one seed draw the same start-up trials; under a time budget (with the stand-in
    --max-trials 1000 people give it) TPE models from the fourth trial, where before it stayed random for 10."""
    runs = {}
    for sampler in ("tpe", "random"):
        res = tmp_path / sampler
        assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials",
                    "1000", "--time-budget", "6s", "--sampler", sampler, "--seed", "7", "--quiet"]) == 0
        runs[sampler] = _proposals(res)
        if sampler == "tpe":
            assert optuna.load_study(study_name="lyrics_tfidf_logreg", storage=f"sqlite:///{res / 'optuna.db'}"
                                     ).user_attrs["policy"]["startup_trials"] == 3
    tpe, random = runs["tpe"], runs["random"]
    assert len(tpe) >= 5 and len(random) >= 5
    assert tpe[:3] == random[:3]  # the baseline and the two random start-up trials: the same draws
    assert tpe[3] != random[3]  # then TPE models


@pytest.mark.slow
def test_a_keras_search_whose_time_budget_fits_about_8_trials_prunes_and_models(tmp_path):
    """A Keras search under --time-budget with the stand-in --max-trials 1000: the median pruner acts (its
    start-up is the baseline and one searched trial, not Optuna's 5) and TPE models after three trials (not 10).
    On a table with a clear genre signal, so that poor trials are told apart from good ones on 160 validation
    songs."""
    from lyrics_cifar_search.study_data.lyrics_demo import make_demo_table
    data = make_demo_table(tmp_path / "clear.csv", n_rows=1000, seed=3, own_share=0.5)
    res = tmp_path / "r"
    assert cli(["lyrics_embedding", "--data", str(data), "--results-dir", str(res), "--seq-len", "30",
                "--vocab-size", "400", "--max-trials", "1000", "--time-budget", "25s", "--epochs", "10",
                "--seed", "5", "--quiet"]) == 0
    study = optuna.load_study(study_name="lyrics_embedding", storage=f"sqlite:///{res / 'optuna.db'}")
    ended = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED") and not record.interrupted(t)]
    assert len(ended) >= 5, len(ended)  # TPE's start-up (3) is over: the later trials were modelled
    assert any(t.state.name == "PRUNED" for t in ended)
    rows = pd.read_csv(res / "lyrics_embedding" / "trials.csv")
    assert (rows["status"] == "PRUNED").sum() >= 1
    # the policy the search ran with, as its oracle recorded it: TPE modelled from the fourth trial on, and the
    # median pruner judged from the third
    ran = study.user_attrs["policy"]
    assert (ran["startup_trials"], ran["pruner_startup"], ran["time_budgeted"]) == (3, 2, True)


# --- each pruner keeps its own rule, with the noise margin on its cut -------------------------------------------

def _study(pruner, direction="maximize"):
    return optuna.create_study(direction=direction, pruner=pruner)


def _complete(study, curve):
    study.add_trial(optuna.trial.create_trial(value=curve[max(curve)], intermediate_values=curve,
                                              state=optuna.trial.TrialState.COMPLETE))


def _running(study, curve, se):
    trial = study.ask()
    trial.set_user_attr("objective_se", se)
    verdicts = []
    for step, value in curve.items():
        trial.report(value, step)
        verdicts.append(trial.should_prune())
    return trial, verdicts


def test_the_median_pruner_compares_the_trials_best_so_far_with_the_median():
    """Optuna's MedianPruner rule: the trial's best value so far against the median of the finished trials at this
    epoch. The margin is on that cut. (The noise guard compared the trial's current value: a trial whose best
    epoch is within the noise of the median was pruned for a worse last epoch.)"""
    pruner = policy.make_pruner("median", Budget(max_trials=10, epochs=10))  # start-up 2, warm-up 2 epochs
    study = _study(pruner)
    for _ in range(3):
        _complete(study, {0: 0.60, 1: 0.60, 2: 0.60})
    _, verdicts = _running(study, {0: 0.58, 1: 0.40, 2: 0.40}, se=0.05)  # best 0.58: 0.02 below, 2 se = 0.10
    assert verdicts == [False, False, False] and pruner.last.spared and pruner.last.beyond == pytest.approx(0.02)
    _, verdicts = _running(study, {0: 0.45, 1: 0.45, 2: 0.45}, se=0.05)  # 0.15 below: beyond the margin
    assert verdicts == [False, False, True] and pruner.last.pruned
    # only finished trials make the median (the guard fell back to pruned ones too)
    assert np.median([0.60] * 3) == pytest.approx(0.60)


def test_successive_halving_keeps_the_top_of_its_rung_not_the_median():
    """A trial goes on from a rung only in the top 1/eta of the values there (eta 4): 0.75 among 0.2 ... 0.9 is
    above the median (0.55) and still outside the top quarter (cut 0.8): pruned, where the noise guard spared it;
    within the margin of that cut it is spared."""
    for se, pruned in ((0.01, True), (0.05, False)):
        pruner = policy.make_pruner("successive-halving", Budget(max_trials=10, epochs=10))  # min resource 2
        study = _study(pruner)
        for v in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2):
            study.add_trial(optuna.trial.create_trial(
                value=v, intermediate_values={2: v}, system_attrs={"completed_rung_0": v},
                state=optuna.trial.TrialState.COMPLETE))
        _, verdicts = _running(study, {0: 0.75, 1: 0.75, 2: 0.75}, se=se)
        assert verdicts[-1] is pruned
        assert pruner.last.beyond == pytest.approx(0.05)  # below the second best of nine: 9 // 4 = 2 go on


def test_hyperbands_brackets_keep_the_margin():
    pruner = policy.make_pruner("hyperband", Budget(max_trials=40, epochs=27))
    study = _study(pruner)
    study.optimize(lambda t: [(t.report(0.5, s), t.should_prune()) for s in range(3)] and 0.5, n_trials=3)
    brackets = compat.brackets(pruner)
    assert brackets and all(isinstance(p, policy.MarginSuccessiveHalvingPruner) for p in brackets)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)  # so TPE still models each bracket apart


# --- a prior that is a prior (piBO) ----------------------------------------------------------------------------

def test_prior_draws_are_truncated_not_clipped():
    """A default at a bound: the old draw, clipped, landed on the bound half the time (78 % for a stepped one)."""
    prior, rng = policy.Prior({"dropout": 0.0, "units": 8, "lr": 1e-4, "kind": "cnn"}), np.random.RandomState(0)
    d = optuna.distributions
    dropout = [prior.draw("dropout", d.FloatDistribution(0.0, 0.5), rng) for _ in range(500)]
    assert min(dropout) > 0 and sum(x < 0.125 for x in dropout) / 500 > 0.3  # near the default, never on it
    units = [prior.draw("units", d.IntDistribution(8, 64, step=8), rng) for _ in range(500)]
    assert set(units) <= set(range(8, 65, 8)) and 0.15 < units.count(8) / 500 < 0.4
    lr = [prior.draw("lr", d.FloatDistribution(1e-4, 1e-1, log=True), rng) for _ in range(500)]
    assert min(lr) > 1e-4 and np.median(np.log10(lr)) < -3  # a log scale: near 1e-4
    kinds = [prior.draw("kind", d.CategoricalDistribution(["cnn", "rnn", "mlp"]), rng) for _ in range(600)]
    assert 0.58 < kinds.count("cnn") / 600 < 0.75  # 1/2 + 1/6
    assert prior.draw("other", d.FloatDistribution(0, 1), rng) is None  # no default: uniform (the base sampler)


def test_tpes_acquisition_is_weighted_by_the_prior_with_a_weight_that_fades():
    sampler = policy.make_sampler("tpe-prior", 3, Budget(max_trials=40), defaults={"x": 0.2})
    assert isinstance(sampler, policy.PriorTPE) and sampler.beta == 4
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.8) ** 2, n_trials=30)
    xs = [t.params["x"] for t in study.trials]
    assert np.median(xs[:10]) < 0.5  # the start-up and first modelled trials lean on the prior (0.2)
    assert sampler.prior_weight() == pytest.approx(4 / 29)  # beta / n, n the finished trials
    assert abs(study.best_params["x"] - 0.8) < 0.15  # and the evidence wins


def test_the_prior_fades_over_the_whole_search_under_hyperband():
    sampler = policy.make_sampler("tpe-prior", 1, Budget(max_trials=40, epochs=27), pruner="hyperband",
                                  defaults={"x": 0.5})
    study = optuna.create_study(sampler=sampler, pruner=policy.make_pruner("hyperband", Budget(40, epochs=27)))

    def objective(t):
        x = t.suggest_float("x", 0, 1)
        for s in range(27):
            t.report(x, s)
            if t.should_prune():
                raise optuna.TrialPruned()
        return x
    study.optimize(objective, n_trials=25)
    ended = len([t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")])
    assert sampler._finished in (ended - 1, ended)  # the whole study's count, not one bracket's


def test_reseeding_reaches_every_generator():
    def first_draws(sampler):
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        return [t.params["x"] for t in study.trials]
    same = first_draws(policy.make_sampler("tpe-prior", 5, Budget(20), defaults={"x": 0.3}))
    assert same == first_draws(policy.make_sampler("tpe-prior", 5, Budget(20), defaults={"x": 0.3}))
    reseeded = policy.make_sampler("tpe-prior", 5, Budget(20), defaults={"x": 0.3})
    reseeded.reseed_rng()  # what Optuna does in each worker process
    assert first_draws(reseeded) != same


def test_a_search_made_with_the_first_tpe_prior_resumes_with_it(tmp_path):
    storage = record.open_storage(None, f"sqlite:///{tmp_path / 's.db'}", heartbeat=False)
    old = optuna.create_study(study_name="old", storage=storage)
    old.set_user_attr("sampler", "tpe-prior")
    old.add_trial(optuna.trial.create_trial(value=0.5, params={"x": 0.1},
                                            distributions={"x": optuna.distributions.FloatDistribution(0, 1)}))
    assert record.legacy_prior(storage, "old")
    assert isinstance(policy.make_sampler("tpe-prior", 1, Budget(), legacy_prior=True), policy.NearDefaults)
    new = optuna.create_study(study_name="new", storage=storage)
    assert not record.legacy_prior(storage, "new")  # no trials yet: piBO, and record.describe marks it so
    record.describe(new, {"family": "f", "data": {"fingerprint": "x"}}, sampler="tpe-prior")
    assert new.user_attrs["prior"] == "pibo" and not record.legacy_prior(storage, "new")


TWO_CONFIGS = '''
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from lyrics_cifar_search.search_spaces import register_family


@register_family("x_two_configs", task="lyrics", engine="optuna", description="a space of two configurations",
                 inputs="texts", defaults={"C": 1.0}, make_features=lambda params, spec: CountVectorizer(),
                 make_classifier=lambda params, seed: LogisticRegression(C=params["C"], max_iter=200))
def suggest(trial):
    return {"C": trial.suggest_categorical("C", [1.0, 0.1])}
'''


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["tpe-prior", "tpe"])
def test_the_optuna_engine_never_trains_a_configuration_twice(tmp_path, small_lyrics, sampler, own_families):
    """Keras Tuner's rule in both engines: a space of two configurations gives two trials, then the search stops
    (the proposals already tried are never trained, and are not trials)."""
    (tmp_path / "two.py").write_text(TWO_CONFIGS)
    res = tmp_path / "r"
    assert cli(["x_two_configs", "--families-from", str(tmp_path / "two.py"), "--data", str(small_lyrics),
                "--results-dir", str(res), "--max-trials", "6", "--sampler", sampler, "--quiet"]) == 0
    rows = pd.read_csv(res / "x_two_configs" / "trials.csv")
    assert sorted(rows["hp_C"]) == [0.1, 1.0] and (rows["status"] == "COMPLETE").all()
    study = optuna.load_study(study_name="x_two_configs", storage=f"sqlite:///{res / 'optuna.db'}")
    assert all(t.user_attrs.get("duplicate") for t in study.trials if t.state.name == "PRUNED")


# --- retries through Optuna's own callback; only what must be filtered is filtered ----------------------------

def test_a_trial_a_killed_run_left_running_is_run_again_by_optunas_retry_callback(tmp_path):
    from lyrics_cifar_search.search_spaces import get_family
    family = get_family("lyrics_tfidf_logreg")
    out = tmp_path / "results" / "lyrics_tfidf_logreg"
    study = optuna_engine.prepare_study(family, out, seed=1)
    killed = study.ask()  # the baseline, queued, asked and never told: the run was killed
    killed.suggest_float("C", 1e-3, 1e2, log=True)
    study = optuna_engine.prepare_study(family, out, seed=1)  # the resume
    frozen = {t.number: t for t in study.trials}
    assert frozen[killed.number].state.name == "FAIL" and frozen[killed.number].user_attrs["interrupted"]
    waiting = [t for t in study.trials if t.state.name == "WAITING"]
    assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == killed.number  # Optuna's mark
    assert waiting[0].user_attrs.get("is_baseline") and record.retried(study) == {killed.number}
    assert record.rows(study) == []


def test_opening_the_storage_hides_only_optunas_experimental_warnings(tmp_path, monkeypatch):
    real = optuna.storages.RDBStorage

    def warns(*args, **kwargs):
        warnings.warn("a deprecation a user must see", DeprecationWarning)
        return real(*args, **kwargs)
    monkeypatch.setattr(optuna.storages, "RDBStorage", warns)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        record.open_storage(None, f"sqlite:///{tmp_path / 's.db'}")
    assert any("a deprecation a user must see" in str(w.message) for w in seen)
    assert not any(isinstance(w.message, optuna.exceptions.ExperimentalWarning) for w in seen)
    assert math.isfinite(policy.NOISE_Z)


# --- a search measured without the earlier study's configuration first ------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("family,flags", [("lyrics_tfidf_logreg", []),
                                          ("lyrics_rnn", ["--seq-len", "20", "--vocab-size", "200", "--epochs", "1"])])
def test_no_baseline_runs_the_samplers_proposals_from_trial_0(tmp_path, small_lyrics, family, flags, capsys):
    from lyrics_cifar_search.runners import engines, prepare
    from lyrics_cifar_search.search_spaces import get_family
    res = tmp_path / "r"
    args = [family, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3", *flags]
    assert cli([*args, "--no-baseline"]) == 0
    rows = pd.read_csv(res / family / "trials.csv")
    assert len(rows) == 3 and not rows["is_baseline"].any()
    defaults = engines.engine(get_family(family)).baseline(
        get_family(family), prepare.prepare(get_family(family), prepare.DataOptions(
            data=str(small_lyrics), results_dir=str(tmp_path / "d"), seq_len=20, vocab_size=200)))
    first = {k[3:]: v for k, v in rows.iloc[0].items() if k.startswith("hp_") and pd.notna(v)}
    assert {k: v for k, v in first.items() if k in defaults} != {k: defaults[k] for k in first if k in defaults}
    assert "baseline" in capsys.readouterr().out  # the summary still speaks, without a baseline to compare
    assert cli(args) == 2  # a resume with the baseline first is another search
    assert "the baseline first (--no-baseline): was False, now True" in capsys.readouterr().err
    study = optuna.load_study(study_name=family, storage=f"sqlite:///{res / 'optuna.db'}")
    assert study.user_attrs["baseline"] is False


# --- Keras Tuner's contract -------------------------------------------------------------------------------------

def _kt_oracle(tmp_path, cls=None, max_trials=10, **kwargs):
    import keras_tuner as kt
    from lyrics_cifar_search.runners.keras_search.optuna_oracle import StudyOracle
    tmp_path.mkdir(parents=True, exist_ok=True)
    o = (cls or StudyOracle)(kt.Objective("val_accuracy", "max"), max_trials, 7,
                             storage_url=f"sqlite:///{tmp_path / 's.db'}", study_name="s", epochs=3, pruner="none",
                             **kwargs)
    o._set_project_dir(str(tmp_path), "kt")
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Int("units", 8, 64, step=8, default=16)
    o.update_space(hp)
    return o


def _end(o, trial, status="COMPLETED", value=0.5):
    if status == "COMPLETED":
        o.update_trial(trial.trial_id, {"val_accuracy": value})
    trial.status = status
    o.end_trial(trial)


def test_an_oracle_subclass_that_overrides_populate_space_is_honoured(tmp_path):
    """Keras Tuner's documented extension point: every new trial's values come from populate_space, a subclass's
    too (the study oracle built each trial itself, and ignored it)."""
    from lyrics_cifar_search.runners.keras_search.optuna_oracle import StudyOracle

    class NarrowUnits(StudyOracle):
        def populate_space(self, trial_id):
            response = super().populate_space(trial_id)
            if response["status"] == "RUNNING" and self.trials:  # after the baseline: units fixed at 64
                response["values"] = {**response["values"], "units": 64}
            return response

    class OwnValues(StudyOracle):
        def populate_space(self, trial_id):  # not asking the study at all
            return {"status": "RUNNING", "values": {"learning_rate": 0.005, "units": 24}}

    o = _kt_oracle(tmp_path / "a", NarrowUnits)
    for _ in range(4):
        _end(o, o.create_trial("t"))
    assert [t.hyperparameters.values["units"] for t in o.trials.values()] == [16, 64, 64, 64]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'a' / 's.db'}")
    rows = record.rows(study)
    assert [r["hp_units"] for r in rows] == [16, 64, 64, 64]  # the replaced proposals are not trials
    assert [r["trial_id"] for r in rows] == [int(t) for t in o.trials]  # ids: the study's numbers
    o = _kt_oracle(tmp_path / "b", OwnValues)
    trial = o.create_trial("t")
    assert trial.hyperparameters.values == {"learning_rate": 0.005, "units": 24}
    _end(o, trial)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'b' / 's.db'}")
    assert study.trials[-1].params == {"learning_rate": 0.005, "units": 24}


def test_keras_tuners_oracle_arguments_and_its_stop_after_failures_in_a_row(tmp_path):
    """max_consecutive_failed_trials stops the search (Keras Tuner's RuntimeError) once the last failure is
    recorded: Keras Tuner raised before saving it, and the study's trial stayed RUNNING."""
    from lyrics_cifar_search.runners.keras_search.study_reports import ConsecutiveFailures
    o = _kt_oracle(tmp_path, max_consecutive_failed_trials=2, max_retries_per_trial=0)
    _end(o, o.create_trial("t"))
    _end(o, o.create_trial("t"), "FAILED")
    with pytest.raises(RuntimeError, match="consecutive failures") as stopped:
        _end(o, o.create_trial("t"), "FAILED")
    assert isinstance(stopped.value, ConsecutiveFailures)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "FAIL"]
    again = _kt_oracle(tmp_path)
    again.reload()
    assert len(again.end_order) == 3  # Keras Tuner's state has the last failure too


def test_max_trials_counts_the_trials_that_end_retries_included(tmp_path):
    """Ask for 6 trials, one of which crashes once and runs again (max_retries_per_trial=1): 6 end."""
    o = _kt_oracle(tmp_path, max_trials=6, max_retries_per_trial=1)
    crashed = False
    while True:
        trial = o.create_trial("t")
        if trial.status == "STOPPED":
            break
        if not crashed:
            crashed = True
            _end(o, trial, "INVALID")
            continue
        _end(o, trial)
    assert len(o.end_order) == 6 and all(o.trials[t].status == "COMPLETED" for t in o.end_order)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [r["status"] for r in record.rows(study)] == ["COMPLETE"] * 6
