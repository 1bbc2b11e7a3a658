"""The search core, rounds two and three (issues 39, 48): the search policy (runners/policy.py: TPE's start-up
from the budget, trials or time; the pruners' start-up counting every fixed trial; constant liar with workers;
Hyperband's brackets), pruners that keep their own rule with a noise margin on its cut and watch what the trial
is scored on, a prior that is a prior (piBO), and Keras Tuner's own oracle contract (best-trial order for a
minimised objective, conditional scopes, reload, retries of failed trials, exhausted spaces, max_trials=None,
its grids, its older end_trial signature)."""

import math

import keras_tuner as kt
import optuna
import pandas as pd
import pytest

from lyrics_cifar_search.runners import compat, policy, record
from lyrics_cifar_search.runners.keras_search import make_oracle
from lyrics_cifar_search.runners.keras_search.optuna_oracle import StudyOracle
from lyrics_cifar_search.runners.keras_search.study_reports import SE
from lyrics_cifar_search.runners.policy import Budget, hyperband_brackets, pruner_startup, startup_trials
from lyrics_cifar_search.runners.keras_search.oracles import EPOCH
from lyrics_cifar_search.runners.keras_search.tuner import ReportEachEpoch, standard_error
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.search_spaces import describe, list_families
from lyrics_cifar_search.suite_common import UserError


def oracle(tmp_path, space, max_trials=20, pruner="median", epochs=10, objective=("val_accuracy", "max"),
           **kwargs):
    o = StudyOracle(kt.Objective(*objective), max_trials, 7, storage_url=f"sqlite:///{tmp_path / 's.db'}",
                    study_name="s", epochs=epochs, pruner=pruner, **kwargs)
    o._set_project_dir(str(tmp_path), "kt")
    hp = kt.HyperParameters()
    space(hp)
    o.update_space(hp)
    return o


def lr_units(hp):
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Int("units", 8, 64, step=8, default=16)


def finish(o, trial, value, name="val_accuracy", curve=(), se=None):
    """Report a learning curve (stopping when told), then the trial's value; end it."""
    stopped = None
    for step, v in enumerate(curve):
        metrics = {EPOCH + name: v, **({SE: se} if se is not None else {})}
        if o.update_trial(trial.trial_id, metrics, step=step).status == "STOPPED":
            stopped = step + 1
            break
    o.update_trial(trial.trial_id, {name: value})
    trial.status = "STOPPED" if stopped else "COMPLETED"
    o.end_trial(trial)
    return stopped


def study_of(tmp_path):
    return optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")


# --- defaults that search --------------------------------------------------------------------------------------

def test_tpe_starts_modelling_after_a_start_up_scaled_to_the_search(tmp_path):
    assert startup_trials(Budget(10, fixed=1)) == 3  # the README's default: the baseline, 2 random, then 7 modelled
    assert startup_trials(Budget(10, fixed=2)) == 4  # more than the fixed trials, always
    assert startup_trials(Budget(40, fixed=1)) == 10 and startup_trials(Budget(None, fixed=1)) == 10  # Optuna's 10
    o = oracle(tmp_path, lr_units, max_trials=10)
    assert o.study.sampler._n_startup_trials == 3
    assert not o.study.sampler._constant_liar  # alone: no trials in progress to lie about


def test_workers_propose_with_the_constant_liar(tmp_path):
    o = oracle(tmp_path, lr_units, parallel=True)
    assert o.study.sampler._constant_liar


def test_hyperbands_per_bracket_start_up_is_accounted_for(tmp_path):
    assert [hyperband_brackets(e) for e in (2, 4, 20, 50)] == [1, 2, 2, 2]
    o = oracle(tmp_path, lr_units, max_trials=40, pruner="hyperband", epochs=50)
    # 10 in all, spread over its 2 brackets (TPE counts its start-up in each bracket apart)
    assert o.study.sampler._n_startup_trials == 5
    study = o.study
    for _ in range(3):  # Optuna's own count of its brackets agrees
        finish(o, o.create_trial("t"), 0.5, curve=[0.5] * 3)
    assert study.pruner._n_brackets == hyperband_brackets(50)
    assert isinstance(o.study.pruner, optuna.pruners.HyperbandPruner)  # so TPE still sees brackets


@pytest.mark.parametrize("name", list_families(engine="keras_tuner"))
def test_every_familys_pruner_start_up_counts_all_its_fixed_trials(tmp_path, name):
    """The oracle is made with the family's fixed first trials, before its study opens (keras_search set them
    after: cifar_cnn's two fixed trials were counted as one, and alone they were the bar)."""
    family = describe(name)
    fixed = len(family.first_trials)
    o = make_oracle("optuna", 10, 10, 1, study=(f"sqlite:///{tmp_path / 's.db'}", "s"),
                    first_trials=family.first_trials)
    assert o.study.pruner._n_startup_trials == pruner_startup(Budget(10, fixed=fixed)) > fixed
    assert o.study.sampler._n_startup_trials == startup_trials(Budget(10, fixed=fixed)) > fixed


def test_the_search_opens_its_study_knowing_the_fixed_trials(tmp_path):
    """The engine's own path (keras_search._make_tuner, then the study opened as run() opens it), for the family
    with four fixed first trials (the study's four block-1 CNNs): the median pruner waits for 5 finished trials,
    not 4, and TPE models after 6."""
    from lyrics_cifar_search.runners import prepare, search_progress
    from lyrics_cifar_search.runners.keras_search import _make_tuner
    family = describe("cifar_cnn")
    assert len(family.first_trials) == 4
    from lyrics_cifar_search.search_spaces import get_family
    family = get_family("cifar_cnn")
    p = prepare.prepare(family, prepare.DataOptions(data="demo", results_dir=str(tmp_path)))
    t = _make_tuner(family, p, tmp_path / "cifar_cnn", max_trials=10, epochs=2, tuner="optuna", seed=1,
                    tensorboard=None, progress=search_progress.Progress("cifar_cnn", 10, ("val_accuracy", "max")))
    assert t.oracle.study.pruner._n_startup_trials == 5 and t.oracle.study.sampler._n_startup_trials == 6


# --- pruning that knows its noise ------------------------------------------------------------------------------

def test_a_trial_within_the_noise_of_the_bar_is_not_pruned_and_one_beyond_it_is(tmp_path):
    o = oracle(tmp_path, lr_units, max_trials=10)  # median start-up: 2 finished trials
    for _ in range(3):
        finish(o, o.create_trial("t"), 0.60, curve=[0.60] * 10, se=0.05)
    # 0.55 is one standard error (0.05, a 100-row validation set) below the median: not told apart
    assert finish(o, o.create_trial("t"), 0.55, curve=[0.55] * 10, se=0.05) is None
    # 0.45 is three standard errors below: pruned after the warm-up (2 epochs), with its margin recorded
    assert finish(o, o.create_trial("t"), 0.45, curve=[0.45] * 10, se=0.05) == 3
    study = study_of(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4 + ["PRUNED"]
    assert study.trials[-1].user_attrs["pruned_beyond_cut"] == pytest.approx(0.15)
    assert study.trials[-1].value == pytest.approx(0.45)  # a pruned trial's value: its last reported epoch
    assert study.trials[-2].user_attrs["spared_by_margin"]  # the rule alone would have stopped it
    rows = record.rows(study)
    assert rows[-1]["status"] == "PRUNED" and rows[-1]["pruned_beyond_cut"] == pytest.approx(0.15)
    assert rows[-2]["spared_by_margin"] and rows[-2]["status"] == "COMPLETE"


def test_the_binomial_standard_error_at_the_validation_size():
    assert standard_error("val_accuracy", {"val_accuracy": 0.5}, 100) == pytest.approx(0.05)
    assert standard_error("val_macro_f1", {"val_macro_f1": 0.5}, 25) == pytest.approx(0.1)
    # log-loss: the spread of the per-example losses (mean 1, mean square 2: variance 1)
    assert standard_error("val_loss", {"val_log_loss": 1.0, "val_log_loss_sq": 2.0}, 100) == pytest.approx(0.1)
    assert standard_error("val_reconstruction_mse", {"val_reconstruction_mse": 0.02,
                                                     "val_reconstruction_mse_se": 0.001}, 100) == 0.001


class _Oracle:
    """What ReportEachEpoch sends (its update_trial), answering RUNNING."""

    def __init__(self):
        self.sent = []

    def update_trial(self, trial_id, metrics, step=0):
        self.sent.append((step, metrics))
        return kt.engine.trial.Trial(kt.HyperParameters(), trial_id=trial_id, status="RUNNING")


def test_each_epoch_reports_what_the_trial_would_be_scored_on():
    """With early stopping's restore, a trial is scored at its lowest-val_loss epoch: that epoch's value is sent
    (not the last epoch's accuracy), and for val_loss the suite's log-loss, not the trial's own training loss."""
    epochs = [{"val_loss": 1.0, "val_accuracy": 0.30, "val_log_loss": 1.2, "val_log_loss_sq": 2.0},
              {"val_loss": 0.8, "val_accuracy": 0.40, "val_log_loss": 1.1, "val_log_loss_sq": 1.9},
              {"val_loss": 0.9, "val_accuracy": 0.50, "val_log_loss": 1.0, "val_log_loss_sq": 1.8}]
    for objective, key, expected in (("val_accuracy", "val_accuracy", [0.30, 0.40, 0.40]),
                                     ("val_loss", "val_log_loss", [1.2, 1.1, 1.1])):
        o = _Oracle()
        report = ReportEachEpoch(o, "0", objective, n_val=100, restored=True)
        report.on_train_begin()
        for e, logs in enumerate(epochs):
            report.on_epoch_end(e, dict(logs))
        assert [m[EPOCH + objective] for _, m in o.sent] == pytest.approx(expected)
        assert [s for s, _ in o.sent] == [0, 1, 2]
        assert all(m[SE] > 0 for _, m in o.sent)
    o = _Oracle()  # no restore (the autoencoder): the last epoch
    report = ReportEachEpoch(o, "0", "val_accuracy", n_val=100, restored=False)
    report.on_train_begin()
    for e, logs in enumerate(epochs):
        report.on_epoch_end(e, dict(logs))
    assert [m[EPOCH + "val_accuracy"] for _, m in o.sent] == pytest.approx([0.30, 0.40, 0.50])


def test_a_trial_run_again_after_a_dead_worker_starts_afresh(tmp_path):
    """distributed.ChiefServicer.requeue_stale hands a silent worker's trial to another: the study oracle forgets
    the first attempt (its ask, the epochs it reported, its pruning), which is failed and left out of the tables."""
    o = oracle(tmp_path, lr_units, max_trials=10)
    for _ in range(3):
        finish(o, o.create_trial("t"), 0.60, curve=[0.60] * 10, se=0.01)
    trial = o.create_trial("w1")
    for step, v in enumerate([0.1] * 3):
        o.update_trial(trial.trial_id, {EPOCH + "val_accuracy": v, SE: 0.01}, step=step)
    assert trial.trial_id in o.pruned  # the first attempt was pruned at its third epoch
    o.forget_attempt(trial.trial_id)
    assert trial.trial_id not in o.pruned
    # the second attempt reports its own epochs from 0, and is judged on them
    assert finish(o, trial, 0.65, curve=[0.65] * 10, se=0.01) is None
    study = study_of(tmp_path)
    assert [t.state.name for t in study.trials][-2:] == ["FAIL", "COMPLETE"]
    assert study.trials[-2].user_attrs["interrupted"] and len(study.trials[-1].intermediate_values) == 10
    assert [r["status"] for r in record.rows(study)] == ["COMPLETE"] * 4


# --- Keras Tuner's oracle contract -----------------------------------------------------------------------------

def test_max_trials_none_is_no_limit(tmp_path):
    o = oracle(tmp_path, lr_units, max_trials=None)
    for _ in range(3):
        trial = o.create_trial("t")
        assert trial.status == "RUNNING"
        finish(o, trial, 0.5)
    assert pruner_startup(Budget(None, fixed=1)) == 5


def test_a_used_up_space_ends_the_search_without_repeating_a_configuration(tmp_path):
    def two_values(hp):
        hp.Choice("units", [8, 16], default=16)
    o = oracle(tmp_path, two_values, max_trials=15)
    seen = []
    while True:
        trial = o.create_trial("t")
        if trial.status == "STOPPED":
            break
        seen.append(trial.hyperparameters.values["units"])
        finish(o, trial, 0.5)
    assert sorted(seen) == [8, 16]  # each value once, then the search stops (Keras Tuner's random oracle too)
    rows = record.rows(study_of(tmp_path))
    assert len(rows) == 2  # the proposals already tried were never trained and are not trials


def test_log_scale_steps_stay_on_keras_tuners_grid(tmp_path):
    def grid(hp):
        hp.Int("width", 8, 256, step=2, sampling="log", default=32)
        hp.Float("rate", 0.001, 0.1, step=10, sampling="log", default=0.01)
    o = oracle(tmp_path, grid)
    for _ in range(12):
        trial = o.create_trial("t")
        v = trial.hyperparameters.values
        assert v["width"] in (8, 16, 32, 64, 128, 256)
        assert any(math.isclose(v["rate"], r) for r in (0.001, 0.01, 0.1))
        finish(o, trial, 0.5)


def test_what_optuna_cannot_sample_is_refused_in_one_line(tmp_path):
    def reverse(hp):
        hp.Float("momentum", 0.5, 0.99, sampling="reverse_log", default=0.9)
    o = oracle(tmp_path, reverse)
    with pytest.raises(UserError, match="momentum.*reverse_log"):
        o.create_trial("t")


def test_same_name_under_different_conditions_does_not_collide(tmp_path):
    def scoped(hp):
        kind = hp.Choice("kind", ["cnn", "rnn"], default="cnn")
        with hp.conditional_scope("kind", ["cnn"]):
            hp.Choice("size", [3, 5], default=3)
        with hp.conditional_scope("kind", ["rnn"]):
            hp.Choice("size", [32, 64], default=32)
        return kind
    o = oracle(tmp_path, scoped)
    for _ in range(6):
        trial = o.create_trial("t")  # Optuna refused a second distribution under one name here
        if trial.status != "RUNNING":
            break
        finish(o, trial, 0.5)
    kinds = set()
    for t in study_of(tmp_path).trials:
        if t.state.name != "COMPLETE":
            continue
        kind = t.params["kind"]
        kinds.add(kind)
        # one study parameter per scope, each with its own choices (Keras Tuner itself keeps only the value of
        # the last-declared one in a trial's values, its random oracle too)
        assert {k for k in t.params if k.startswith("size")} == {f"size|kind={kind}"}
        assert t.params[f"size|kind={kind}"] in ((3, 5) if kind == "cnn" else (32, 64))
    assert kinds == {"cnn", "rnn"}


def test_best_trials_of_a_minimised_objective_come_lowest_first(tmp_path):
    o = oracle(tmp_path, lr_units, objective=("val_loss", "min"))
    for value in (0.9, 0.3, 0.6):
        finish(o, o.create_trial("t"), value, name="val_loss")
    assert [t.score for t in o.get_best_trials(3)] == [0.3, 0.6, 0.9]
    assert study_of(tmp_path).best_value == 0.3


def test_a_loss_objective_searched_as_maximize_is_caught(tmp_path):
    """The study's direction is the objective's: a loss told to a maximising study would rank the worst first."""
    o = oracle(tmp_path, lr_units, objective=("val_loss", "min"))
    o.study
    assert study_of(tmp_path).direction == optuna.study.StudyDirection.MINIMIZE
    for name in list_families():
        metric, direction = describe(name).objective or ("val_accuracy", "max")
        assert direction == ("min" if "loss" in metric or "mse" in metric else "max"), name


def test_reload_and_the_older_end_trial_signature(tmp_path):
    o = oracle(tmp_path, lr_units)
    first = o.create_trial("t")
    o.update_trial(first.trial_id, {"val_accuracy": 0.5})
    o.end_trial(first.trial_id, "COMPLETED")  # Keras Tuner's signature before 1.1
    o.save()
    again = oracle(tmp_path, lr_units)
    again.reload()
    assert list(again.trials) == [first.trial_id] and again.trials[first.trial_id].status == "COMPLETED"
    second = again.create_trial("t")
    finish(again, second, 0.6)
    assert [t.state.name for t in study_of(tmp_path).trials] == ["COMPLETE", "COMPLETE"]


def test_a_failed_trial_is_retried_as_keras_tuner_retries_it(tmp_path):
    """Keras Tuner's retries of a crashed trial (max_retries_per_trial), each run again as a new trial with the
    same values and the study's next number as its id (Optuna's convention), the retries still counted."""
    o = oracle(tmp_path, lr_units)
    o.max_retries_per_trial = 1
    trial = o.create_trial("t")
    trial.status = "INVALID"  # crashed: Keras Tuner runs it again
    o.end_trial(trial)
    again = o.create_trial("t")
    assert (trial.trial_id, again.trial_id) == ("00", "01") and list(o.trials) == ["01"]
    assert again.hyperparameters.values == trial.hyperparameters.values and o.is_fixed(again.trial_id)
    again.status = "INVALID"  # crashed again: no retry left
    o.end_trial(again)
    assert o.trials["01"].status == "FAILED" and o.end_order == ["01"]  # Keras Tuner: no retry left
    finish(o, o.create_trial("t"), 0.5)
    study = study_of(tmp_path)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert [(r["trial_id"], r["status"]) for r in record.rows(study)] == [(1, "FAIL"), (2, "COMPLETE")]


# --- end to end ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_pruned_trials_are_pruned_in_the_study_the_csv_and_the_tables(tmp_path, small_lyrics):
    """A search whose trials are pruned: PRUNED in the study, in trials.csv and in the comparison table, never
    COMPLETE, and never best/. Asserted, not guarded: the search is made so that trials are pruned."""
    res = tmp_path / "r"
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(res), "--seq-len", "30",
                "--vocab-size", "300", "--max-trials", "8", "--epochs", "5", "--pruner", "successive-halving",
                "--sampler", "random", "--seed", "3"]) == 0
    rows = pd.read_csv(res / "lyrics_lstm" / "trials.csv")
    study = optuna.load_study(study_name="lyrics_lstm", storage=f"sqlite:///{res / 'optuna.db'}")
    pruned = rows[rows["status"] == "PRUNED"]
    assert len(pruned) >= 1
    by_id = {record.trial_id(t): t for t in study.trials}
    for _, row in pruned.iterrows():
        t = by_id[int(row["trial_id"])]
        assert t.state.name == "PRUNED" and row["epochs_run"] < 5
        assert t.value == pytest.approx(list(t.intermediate_values.values())[-1])
    best = pd.read_json(res / "lyrics_lstm" / "best" / "meta.json", typ="series")
    assert int(best["trial_id"]) not in set(pruned["trial_id"])
    # the comparison table (analysis/compare.py) ranks finished trials only: its best is never a pruned one
    from lyrics_cifar_search.analysis import compare
    assert compare.main(["--results-dir", str(res), "--families", "lyrics_lstm"]) == 0
    table = pd.read_csv(res / "comparison_lyrics.csv")
    assert len(table) == 1 and int(table["best_trial"].iloc[0]) == int(best["trial_id"])
    assert int(table["best_trial"].iloc[0]) not in set(pruned["trial_id"])
    # the told value of every complete trial is the last value its learning curve tracked
    for t in study.trials:
        if t.state.name == "COMPLETE":
            assert t.value == pytest.approx(list(t.intermediate_values.values())[-1])


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["val_loss", "val_macro_f1"])
def test_the_value_told_at_the_end_is_what_the_epochs_tracked(tmp_path, small_lyrics, objective):
    res = tmp_path / "r"
    assert cli(["lyrics_rnn", "--data", str(small_lyrics), "--results-dir", str(res), "--seq-len", "20",
                "--vocab-size", "200", "--max-trials", "2", "--epochs", "3", "--objective", objective,
                "--pruner", "none"]) == 0
    study = optuna.load_study(study_name="lyrics_rnn", storage=f"sqlite:///{res / 'optuna.db'}")
    assert study.direction.name == ("MINIMIZE" if objective == "val_loss" else "MAXIMIZE")
    for t in study.trials:
        assert t.state.name == "COMPLETE"
        assert t.value == pytest.approx(list(t.intermediate_values.values())[-1])
        assert t.value == pytest.approx(t.user_attrs[objective])


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["optuna", "random"])
def test_a_trial_cut_short_by_the_hard_time_budget_is_never_complete(tmp_path, small_lyrics, tuner):
    """--time-budget-hard stops the trial in progress: its value is from fewer epochs than the others', so it is
    PRUNED (in the study and trials.csv), never best/; with the study's oracle and with Keras Tuner's own (whose
    STOPPED trial the suite records as PRUNED)."""
    res = tmp_path / "r"
    assert cli(["lyrics_rnn", "--data", str(small_lyrics), "--results-dir", str(res), "--seq-len", "30",
                "--vocab-size", "300", "--max-trials", "3", "--epochs", "400", "--time-budget", "3s",
                "--time-budget-hard", "--tuner", tuner]) == 0
    rows = pd.read_csv(res / "lyrics_rnn" / "trials.csv")
    assert rows["status"].tolist() == ["PRUNED"] and rows["epochs_run"][0] < 400
    study = optuna.load_study(study_name="lyrics_rnn", storage=f"sqlite:///{res / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["PRUNED"]
    assert not (res / "lyrics_rnn" / "best" / "meta.json").exists()


@pytest.mark.slow
def test_the_autoencoder_reports_its_reconstruction_error_each_epoch(tmp_path):
    res = tmp_path / "r"
    assert cli(["cifar_autoencoder", "--data", "demo", "--results-dir", str(res), "--max-trials", "2",
                "--epochs", "2", "--pruner", "none"]) == 0
    study = optuna.load_study(study_name="cifar_autoencoder", storage=f"sqlite:///{res / 'optuna.db'}")
    for t in study.trials:
        assert len(t.intermediate_values) == 2  # a learning curve, so the pruner has values to act on
        assert t.value == pytest.approx(t.intermediate_values[1])
        assert t.value == pytest.approx(t.user_attrs["val_reconstruction_mse"])


