"""The whole study in one command (runners/study.py), and --time-budget on runners/search.py."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lyrics_cifar_search.runners import study
from lyrics_cifar_search.runners.search import cli

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]


def run_study(*args, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "runners" / "study.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_a_plan_runs_end_to_end_to_a_report_and_resumes_with_nothing_new(tmp_path, small_lyrics):
    plan = tmp_path / "plan.toml"
    plan.write_text('[defaults]\nseq_len = 30\nvocab_size = 300\n\n'
                    '[[search]]\nfamily = "lyrics_tfidf_logreg"\nmax_trials = 2\n\n'
                    '[[search]]\nfamily = "lyrics_lstm"\nmax_trials = 1\nepochs = 1\n')
    res = tmp_path / "results"
    p = run_study(plan, "--lyrics-data", small_lyrics, "--results-dir", res)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "[study] search 1 of 2: lyrics_tfidf_logreg" in p.stdout and "[study] search 2 of 2: lyrics_lstm" in p.stdout
    assert "[study] lyrics_lstm done in" in p.stdout and "best val_accuracy" in p.stdout
    assert "[lyrics_tfidf_logreg] trial 0 COMPLETE" in p.stdout  # each search's progress, by default
    trials = {f: pd.read_csv(res / f / "trials.csv") for f in ("lyrics_tfidf_logreg", "lyrics_lstm")}
    assert len(trials["lyrics_tfidf_logreg"]) == 2 and len(trials["lyrics_lstm"]) == 1
    assert (res / "report.html").exists() and (res / "comparison_lyrics.csv").exists()
    report = (res / "report.md").read_text()
    assert "## The earlier study's own numbers" in report and "0.607" in report  # TF-IDF's, beside ours
    before = (res / "report.html").stat().st_mtime_ns
    again = run_study(plan, "--lyrics-data", small_lyrics, "--results-dir", res)
    assert again.returncode == 0 and again.stdout.count("already done; skipped") == 2
    assert "0 run now" in again.stdout and (res / "report.html").stat().st_mtime_ns == before
    for f, t in trials.items():
        assert pd.read_csv(res / f / "trials.csv").equals(t)
    dry = run_study(plan, "--lyrics-data", small_lyrics, "--results-dir", res, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("done (") == 2 and "0 to run" in dry.stdout


def test_quiet_reaches_every_search_of_the_study(tmp_path, small_lyrics):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[search]]\nfamily = "lyrics_tfidf_logreg"\nmax_trials = 1\n')
    res = tmp_path / "results"
    p = run_study(plan, "--lyrics-data", small_lyrics, "--results-dir", res, "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "[study] search 1 of 1: lyrics_tfidf_logreg" in p.stdout and "best val_accuracy" in p.stdout
    assert "] trial 0" not in p.stdout and "feature matrices fitted" not in p.stderr  # no progress, no notices
    assert len(pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")) == 1


def test_dry_run_lists_every_search_of_the_default_plan(capsys, tmp_path):
    assert study.main(["--dry-run", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    names = [line.split()[1] for line in out.splitlines() if line.split()[0].endswith(".") and line.split()[0][:-1].isdigit()]
    families = ["lyrics_rnn", "lyrics_lstm", "lyrics_stacked_lstm", "lyrics_embedding", "lyrics_glove", "lyrics_cnn",
                "lyrics_cnn_multikernel", "lyrics_cnn_lstm", "lyrics_tfidf_logreg", "lyrics_decision_tree"]
    assert names == [n for f in families for n in (f, f + "_artist")] + ["cifar_cnn", "cifar_autoencoder",
                                                                         "cifar_transfer"]
    assert out.startswith("23 searches, results in ") and "23 to run" in out


def test_only_and_bad_plans_get_one_line(tmp_path, capsys):
    assert study.main(["--dry-run", "--only", "cifar_*", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("3 searches, results in ")
    for argv, expected in ((["--only", "nothing*"], "matches no search"), ([str(tmp_path / "no.toml")], "not found"),
                           (["--time-budget", "soon"], "--time-budget")):
        assert study.main([*argv, "--dry-run"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0]


@pytest.mark.parametrize("line, expected", [("time_budget = \"-5s\"", "time_budget '-5s'"),
                                            ("time_budget = [1, 2]", "time_budget must be a duration"),
                                            ("max_trials = 0", "max_trials 0"),
                                            ("epochs = \"many\"", "epochs 'many'")])
def test_a_plans_bad_budget_is_one_line(tmp_path, capsys, line, expected):
    """Issue 40: a negative time_budget, or a list, in a plan gave an argparse traceback in --dry-run."""
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[search]]\nfamily = "lyrics_lstm"\n{line}\n')
    assert study.main([str(plan), "--dry-run", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_the_dry_run_counts_pruned_trials_as_ended(tmp_path, capsys):
    (tmp_path / "lyrics_lstm").mkdir()
    pd.DataFrame({"trial_id": range(5), "status": ["COMPLETE", "PRUNED", "PRUNED", "FAIL", "RUNNING"],
                  "val_accuracy": [0.5, 0.4, 0.3, None, None]}).to_csv(tmp_path / "lyrics_lstm" / "trials.csv",
                                                                     index=False)
    assert study.trials_on_record(tmp_path, "lyrics_lstm")[0] == 4


def test_a_search_with_bad_input_stops_the_study(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[search]]\nfamily = "lyrics_tfidf_logreg"\nseed = -1\n\n[[search]]\nfamily = "lyrics_lstm"\n')
    p = run_study(plan, "--results-dir", tmp_path / "r")
    assert p.returncode == 2 and "--seed" in p.stderr and "stopped at lyrics_tfidf_logreg" in p.stderr
    assert "lyrics_lstm" not in p.stdout


def test_a_time_budget_ends_a_search_before_its_trial_count(tmp_path, small_lyrics, capsys):
    start = time.time()
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(tmp_path), "--max-trials",
                "100000", "--time-budget", "3s"]) == 0
    assert time.time() - start < 30
    t = pd.read_csv(tmp_path / "lyrics_tfidf_logreg" / "trials.csv")
    assert 1 <= len(t) < 100000 and (t["status"] == "COMPLETE").all()
    out = capsys.readouterr().out
    assert f"time budget (3 s) ended the search after {len(t)} of 100000 trials" in out
    # resuming continues the same search
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(tmp_path), "--max-trials",
                str(len(t) + 2)]) == 0
    assert len(pd.read_csv(tmp_path / "lyrics_tfidf_logreg" / "trials.csv")) == len(t) + 2


def test_a_hard_time_budget_stops_the_keras_trial_at_an_epoch_end(tmp_path):

    import keras
    import keras_tuner as kt
    import numpy as np

    from lyrics_cifar_search.runners.keras_search.trial import StopAtDeadline, train
    from lyrics_cifar_search.runners.search_progress import Stop
    from lyrics_cifar_search.search_spaces import KerasFamily
    from lyrics_cifar_search.runners.prepare import Prepared

    class Tiny(kt.HyperModel):
        def build(self, hp):
            inp = keras.Input((2,), name="x")
            model = keras.Model({"x": inp}, keras.layers.Dense(2, activation="softmax")(inp))
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

    x, y = {"x": np.random.default_rng(0).normal(size=(16, 2)).astype("float32")}, np.array([0, 1] * 8)
    prepared = Prepared(x, y, x, y, ["a", "b"], {}, {}, {})
    family = KerasFamily("tiny", "lyrics", "keras_tuner", "fake", epochs=50, patience=None)
    stop = StopAtDeadline(Stop(deadline=time.time() - 1))  # passed: the first epoch end stops it
    _, metrics = train(family, Tiny(), kt.HyperParameters(), prepared, epochs=50, seed=0,
                       history_path=tmp_path / "h.csv", callbacks=[stop])
    assert stop.stopped and metrics["epochs_run"] == 1
    _, metrics = train(family, Tiny(), kt.HyperParameters(), prepared, epochs=3, seed=0,
                       history_path=tmp_path / "h.csv", callbacks=[StopAtDeadline(Stop(deadline=time.time() + 600))])
    assert metrics["epochs_run"] == 3
