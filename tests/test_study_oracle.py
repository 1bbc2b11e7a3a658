"""The default tuner of a Keras family (issue 29): a Keras Tuner oracle backed by an Optuna study. Optuna
proposes each trial (the hypermodel's space translated to Optuna distributions, conditional ones only where
active), the family's fixed first trial is the baseline and never pruned, the pruner stops poor trials at an
epoch end (PRUNED, never best/), and the study records every trial with its learning curve."""

import keras_tuner as kt
import optuna
import pandas as pd
import pytest

from lyrics_cifar_search.runners.keras_search.optuna_oracle import StudyOracle
from lyrics_cifar_search.runners.policy import Budget, pruner_startup
from lyrics_cifar_search.runners.keras_search.oracles import EPOCH
from lyrics_cifar_search.runners.search import cli


def oracle(tmp_path, pruner="median", epochs=10):
    o = StudyOracle(kt.Objective("val_accuracy", "max"), 20, 7, storage_url=f"sqlite:///{tmp_path / 's.db'}",
                    study_name="s", epochs=epochs, pruner=pruner)
    o._set_project_dir(str(tmp_path), "kt")
    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    hp.Int("units", 8, 64, step=8, default=16)
    source = hp.Choice("source", ["learned", "glove"], default="learned")
    with hp.conditional_scope("source", ["learned"]):
        hp.Choice("dim", [32, 100], default=100)
    o.update_space(hp)
    return o


def run_trial(o, tuner_id, curve):
    """A trial that reports `curve` epoch by epoch, stopping when told to; its final results; ended."""
    trial = o.create_trial(tuner_id)
    stopped_at = None
    for epoch, value in enumerate(curve):
        if o.update_trial(trial.trial_id, {EPOCH + "val_accuracy": value}, step=epoch).status == "STOPPED":
            stopped_at = epoch + 1
            break
    o.update_trial(trial.trial_id, {"val_accuracy": max(curve[:stopped_at or len(curve)])})
    trial.status = "STOPPED" if stopped_at else "COMPLETED"
    o.end_trial(trial)
    return trial, stopped_at


def test_the_study_proposes_records_and_prunes(tmp_path):
    o = oracle(tmp_path)
    base, stopped = run_trial(o, "t", [0.1] * 10)  # a poor baseline: still never pruned
    assert stopped is None and base.hyperparameters.values["learning_rate"] == 1e-3
    good = [0.6 + 0.01 * e for e in range(10)]
    assert run_trial(o, "t", good)[1] is None
    # as poor as the one pruned below, but fewer than pruner_startup(20 trials, 1 fixed) = 4 have finished: the
    # median of the baseline and one more is no bar yet
    after = pruner_startup(Budget(max_trials=20, fixed=1))
    assert after == 4
    assert run_trial(o, "t", [0.05] * 10)[1] is None
    for _ in range(after - 3):
        assert run_trial(o, "t", good)[1] is None
    bad, stopped = run_trial(o, "t", [0.05] * 10)
    assert stopped == 2 + 1  # the median pruner waits warmup_epochs(10) = 2 epochs, then stops it
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE"] * after + ["PRUNED"]
    assert study.trials[0].user_attrs["is_baseline"] and study.trials[0].params["learning_rate"] == 1e-3
    assert len(study.trials[-1].intermediate_values) == 3 and len(study.trials[1].intermediate_values) == 10
    assert study.trials[1].user_attrs["val_accuracy"] == pytest.approx(0.69)
    d = study.trials[1].distributions
    assert d["learning_rate"].log and isinstance(d["units"], optuna.distributions.IntDistribution)
    for t in study.trials:  # the conditional hyperparameter only where its parent is active
        assert ("dim" in t.params) == (t.params["source"] == "learned")
    assert o.trials[bad.trial_id].status == "STOPPED" and o.get_best_trials(1)[0].trial_id != bad.trial_id


def test_the_median_pruner_waits_for_a_share_of_the_search_and_a_searched_trial():
    assert pruner_startup(Budget(max_trials=10, fixed=1)) == 2  # the README's first command: from the third trial
    assert pruner_startup(Budget(max_trials=10, fixed=2)) == 3  # cifar_cnn: its two fixed trials alone are no bar
    assert pruner_startup(Budget(max_trials=1000, fixed=2)) == 5  # 1,000 trials: Optuna's default
    # a time-budgeted search (its --max-trials a cap, not its size): the fixed trials and one searched
    assert pruner_startup(Budget(max_trials=1000, time_budget=90, fixed=2)) == 3


def test_no_pruner_trains_every_trial_to_the_end(tmp_path):
    o = oracle(tmp_path, pruner="none")
    for curve in ([0.5] * 10, [0.5] * 10, [0.5] * 10, [0.01] * 10):
        assert run_trial(o, "t", curve)[1] is None


@pytest.mark.slow
def test_a_keras_search_under_the_study_end_to_end(tmp_path, small_lyrics, capsys):
    res = tmp_path / "r"
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(res), "--seq-len", "30",
                "--vocab-size", "300", "--max-trials", "6", "--epochs", "6",
                "--pruner", "successive-halving"]) == 0
    rows = pd.read_csv(res / "lyrics_lstm" / "trials.csv")
    pruned = rows[rows["status"] == "PRUNED"]
    said = capsys.readouterr().out
    # what pruning saved, said whether or not a trial was pruned (test_search_core's end-to-end test asserts
    # that trials are pruned, PRUNED everywhere)
    saved = int((6 - pruned["epochs_run"]).sum())
    assert (f"{saved} of 36 epochs saved" in said) == bool(len(pruned))
    study = optuna.load_study(study_name="lyrics_lstm", storage=f"sqlite:///{res / 'optuna.db'}")
    assert len(study.trials) == len(rows) == 6 and bool(rows["is_baseline"][0])
    assert [t.state.name.replace("COMPLETE", "COMPLETE") for t in study.trials] == rows["status"].tolist()
    for t, (_, row) in zip(study.trials, rows.iterrows()):
        assert len(t.intermediate_values) == row["epochs_run"]  # the learning curve, epoch by epoch
        assert t.datetime_complete > t.datetime_start
        if t.state.name == "COMPLETE":
            assert t.value == pytest.approx(row["val_accuracy"])
    best = pd.read_json(res / "lyrics_lstm" / "best" / "meta.json", typ="series")
    assert rows.set_index("trial_id").loc[int(best["trial_id"]), "status"] == "COMPLETE"
    # the pruner is part of what a trial means: a resume with another is refused
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(res), "--seq-len", "30",
                "--vocab-size", "300", "--max-trials", "7", "--epochs", "6"]) == 2


def test_pruner_and_sampler_need_the_study_backed_tuner(tmp_path, small_lyrics, capsys):
    for args, named in ((["lyrics_lstm", "--tuner", "random", "--pruner", "median"], "--pruner"),
                        (["lyrics_tfidf_logreg", "--pruner", "median"], "--pruner"),
                        (["lyrics_lstm", "--tuner", "hyperband", "--sampler", "random"], "--sampler"),
                        (["lyrics_tfidf_logreg", "--tuner", "random"], "--sampler random")):
        assert cli([*args, "--data", str(small_lyrics), "--results-dir", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err, err


def test_the_fixed_first_trials_are_never_pruned(tmp_path):
    # successive halving has no start-up wait (the median pruner waits for more trials than the fixed ones): it
    # stops a trial below the best at its first rung, epoch 2
    o = oracle(tmp_path, pruner="successive-halving")
    o.first_trials = ({}, {"units": 8}, {"units": 24}, {"units": 32}, {"units": 40})  # five fixed trials
    for curve in ([0.6] * 10, [0.6] * 10, [0.6] * 10):
        run_trial(o, "t", curve)
    fixed, stopped = run_trial(o, "t", [0.05] * 10)  # as poor as the pruned one above, but fixed
    assert stopped is None and fixed.hyperparameters.values["units"] == 32
    assert run_trial(o, "t", [0.05] * 10)[1] is None  # the fifth, fixed too
    assert run_trial(o, "t", [0.05] * 10)[1] == 3  # the first searched one is pruned


@pytest.mark.slow
def test_keras_tuners_own_oracle_records_every_trial_and_refills_a_lost_record(tmp_path, small_lyrics):
    """--tuner random: each trial goes into the study as it ends, with its learning curve and times; a record
    lost (a search made before it existed, a deleted optuna.db) is refilled from Keras Tuner's state on resume."""
    res = tmp_path / "r"
    args = ["lyrics_rnn", "--data", str(small_lyrics), "--results-dir", str(res), "--seq-len", "30", "--vocab-size",
            "300", "--max-trials", "2", "--epochs", "2", "--tuner", "random"]
    assert cli(args) == 0
    rows = pd.read_csv(res / "lyrics_rnn" / "trials.csv")
    study = optuna.load_study(study_name="lyrics_rnn", storage=f"sqlite:///{res / 'optuna.db'}")
    for t, (_, row) in zip(study.trials, rows.iterrows()):
        history = pd.read_csv(res / "lyrics_rnn" / "histories" / f"trial_{row['trial_id']}.csv")
        assert list(t.intermediate_values.values()) == pytest.approx(list(history["val_accuracy"]))
        assert t.datetime_complete > t.datetime_start and t.value == pytest.approx(row["val_accuracy"])
    (res / "optuna.db").unlink()
    assert cli(args) == 0  # nothing left to run: the record is refilled, trials.csv written from it again
    again = pd.read_csv(res / "lyrics_rnn" / "trials.csv")
    assert again.drop(columns=["duration_s"]).equals(rows.drop(columns=["duration_s"]))


def test_the_summary_and_report_say_what_pruning_saved(tmp_path):
    import json

    from lyrics_cifar_search.runners import search_summary
    (tmp_path / "search.json").write_text(json.dumps({"epochs": 6, "tuner": "optuna", "sampler": "tpe",
                                                      "pruner": "median"}))
    trials = pd.DataFrame({"status": ["COMPLETE", "PRUNED", "FAIL", "PRUNED"], "epochs_run": [6, 2, 1, 3]})
    assert search_summary.counts(tmp_path, trials).startswith(
        "1 complete, 1 failed, 2 pruned: 7 of 24 epochs saved against training every trial to 6; the noise margin")
    trials["spared_by_margin"] = [None, None, True, None]
    assert search_summary.counts(tmp_path, trials).endswith(
        "; the noise margin (2 standard errors of a trial's own score beyond its pruner's cut) spared 1 trial the "
        "pruner's rule would have stopped")
    assert search_summary.proposer(tmp_path) == "Optuna study (tpe sampler, median pruner)"
    (tmp_path / "search.json").write_text(json.dumps({"epochs": 6, "tuner": "hyperband"}))
    assert search_summary.proposer(tmp_path) == "Keras Tuner hyperband"
