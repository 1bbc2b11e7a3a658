"""Fault injection: kills at every write point, random kills, Ctrl-C, locks, hostile files, determinism."""

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners.search import cli, hold_lock
from lyrics_cifar_search.suite_common import UserError
from lyrics_cifar_search.study_data import lyrics
from lyrics_cifar_search.study_data.text import TextEncoder

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]


def search_cmd(family, data, res, trials, *extra):
    return [sys.executable, str(ROOT / "runners" / "search.py"), family, "--data", str(data), "--results-dir",
            str(res), "--max-trials", str(trials), "--epochs", "1", *FAST, *extra]


def run(cmd, env=None, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})


def check_invariants(res, family, data, finished_expected=None):
    """trials.csv parses, each trial once, and best/ is the best finished trial's model."""
    folder = res / family
    t = pd.read_csv(folder / "trials.csv")
    assert t["trial_id"].is_unique
    # the record (the search's study) holds each ended trial once, as trials.csv says
    import optuna

    from lyrics_cifar_search.runners import record
    study = optuna.load_study(study_name=family, storage=record.storage_url(res))
    kept = [t for t in study.trials if t.state in record.FINISHED and not record.interrupted(t, record.retried(study))]
    assert sorted(record.trial_id(s) for s in kept) == sorted(t.loc[t["status"] != "RUNNING", "trial_id"])
    assert [s.number for s in kept] == [record.trial_id(s) for s in kept]  # one number per trial everywhere
    done = t[t["status"] == "COMPLETE"]
    if finished_expected is not None:
        assert len(t) == finished_expected and len(done) == finished_expected
    if done.empty:
        return t
    model = load_best(family, res)
    best = done["val_accuracy"].max()
    assert model.meta["metrics"]["val_accuracy"] == pytest.approx(best)
    assert str(model.meta["trial_id"]) in set(done.loc[done["val_accuracy"] == best, "trial_id"].astype(str))
    d = lyrics.load(data, cache_dir=res / "_cache", sample_fraction=1.0, seq_len=30, vocab_size=300)
    x = model.model.predict(d.val.texts) if model.meta["engine"] == "optuna" else \
        model.model.predict({"lyrics": d.val.x}, verbose=0).argmax(1)
    assert np.mean(x == d.val.y) == pytest.approx(best)  # the saved model really scores that
    assert not list(folder.glob(".candidate-*")) and not (folder / "best.old").exists()
    return t


POINTS = ["candidate-written", "trial-recorded", "before-promote", "mid-replace-dir", "before-csv"]


# Optuna passes every write point; Keras Tuner the three on its own path.
KILLS = [("lyrics_tfidf_logreg", 3, point) for point in POINTS] + \
        [("lyrics_lstm", 2, point) for point in ("candidate-written", "oracle-saved", "trial-recorded",
                                                 "mid-replace-dir")]


@pytest.mark.parametrize("family,trials,point", KILLS)
def test_search_survives_a_kill_at_each_write_point(family, trials, point, tmp_path, small_lyrics):
    res = tmp_path / "r"
    first = run(search_cmd(family, small_lyrics, res, trials), env={"SEARCH_SUITE_CRASH_AT": point})
    assert first.returncode == 137, first.stderr[-2000:]
    resumed = run(search_cmd(family, small_lyrics, res, trials))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    check_invariants(res, family, small_lyrics, finished_expected=trials)


@pytest.mark.parametrize("skip,extra", [(1, ()), (0, ("--time-budget", "3s", "--time-budget-hard", "--epochs", "400"))])
def test_a_kill_as_a_trial_is_recorded_leaves_it_once(skip, extra, tmp_path, small_lyrics):
    """kill -9 right after Keras Tuner saved an ended trial and before the study was told (issue 40): for a
    complete trial (the second) and a pruned one (the first, cut short by --time-budget-hard: PRUNED). Keras
    Tuner's reload put the trial up to run again, and it was in trials.csv twice."""
    res = tmp_path / "r"
    cmd = [*search_cmd("lyrics_lstm", small_lyrics, res, 3), *extra]
    first = run(cmd, env={"SEARCH_SUITE_CRASH_AT": "oracle-saved", "SEARCH_SUITE_CRASH_SKIP": str(skip)})
    assert first.returncode == 137, first.stderr[-2000:]
    resumed = run(cmd)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    t = check_invariants(res, "lyrics_lstm", small_lyrics)
    assert t["trial_id"].tolist() == sorted(set(t["trial_id"]))
    if extra:
        assert t["status"].tolist()[0] == "PRUNED"
    else:
        assert t["trial_id"].tolist() == [0, 1, 2]


def test_a_kill_as_a_killed_trial_is_taken_to_run_again_loses_nothing(tmp_path, small_lyrics):
    """kill -9 in the second trial, then kill -9 again as the resume takes that trial to run again, before the
    oracle's state is saved without it: the next resume reloads Keras Tuner's state (which still names the
    trial, so its folder must still be there) and finishes. CI saw this window once in the random kills."""
    res = tmp_path / "r"
    cmd = search_cmd("lyrics_lstm", small_lyrics, res, 3)
    first = run(cmd, env={"SEARCH_SUITE_CRASH_AT": "trial-started", "SEARCH_SUITE_CRASH_SKIP": "1"})
    assert first.returncode == 137, first.stderr[-2000:]
    second = run(cmd, env={"SEARCH_SUITE_CRASH_AT": "retry-taken"})
    assert second.returncode == 137, second.stderr[-2000:]
    last = run(cmd)
    assert last.returncode == 0, last.stderr[-3000:]
    t = check_invariants(res, "lyrics_lstm", small_lyrics, finished_expected=3)
    folder = res / "lyrics_lstm"
    ids = t["trial_id"].tolist()
    assert sorted(int(p.stem[6:]) for p in (folder / "histories").glob("trial_*.csv")) == ids
    assert sorted(int(p.name[6:]) for p in (folder / "keras_tuner").glob("trial_*")) == ids


@pytest.mark.parametrize("skip", [1, 0])
def test_after_a_hard_kill_a_trial_has_one_number_everywhere(skip, tmp_path, small_lyrics):
    """kill -9 as the second trial starts (issue 42): the trial runs again as a new trial, numbered as the study
    numbers it, so trials.csv, the study (the Optuna dashboard), the histories and Keras Tuner's folders name
    each trial alike; the cut attempt stays in the study only, FAIL and marked interrupted. Before, the rerun
    kept Keras Tuner's id 1 while the study called it trial 2, and every later trial was one off. skip=0: the
    first trial, killed before Keras Tuner saved any state (its folder and history are cleared on resume)."""
    import optuna

    from lyrics_cifar_search.runners import record
    res = tmp_path / "r"
    cmd = search_cmd("lyrics_lstm", small_lyrics, res, 3)
    first = run(cmd, env={"SEARCH_SUITE_CRASH_AT": "trial-started", "SEARCH_SUITE_CRASH_SKIP": str(skip)})
    assert first.returncode == 137, first.stderr[-2000:]
    assert run(cmd).returncode == 0
    t = check_invariants(res, "lyrics_lstm", small_lyrics, finished_expected=3)
    study = optuna.load_study(study_name="lyrics_lstm", storage=record.storage_url(res))
    ids = [n for n in range(4) if n != skip]
    assert [(s.number, s.state.name, bool(s.user_attrs.get("interrupted"))) for s in study.trials] == \
        [(n, "FAIL", True) if n == skip else (n, "COMPLETE", False) for n in range(4)]
    assert t["trial_id"].tolist() == ids and t["is_baseline"].tolist() == [True, False, False]
    folder = res / "lyrics_lstm"
    assert sorted(int(p.stem[6:]) for p in (folder / "histories").glob("trial_*.csv")) == ids
    assert sorted(int(p.name[6:]) for p in (folder / "keras_tuner").glob("trial_*")) == ids


def test_random_kills_lose_nothing(tmp_path, small_lyrics):
    """A few kill -9 at random moments (the soak script does more: bench/kill_soak.py)."""
    res, rng = tmp_path / "r", random.Random(0)
    cmd = search_cmd("lyrics_lstm", small_lyrics, res, 6)
    kills = 0
    for _ in range(3):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        time.sleep(rng.uniform(6, 12))
        if p.poll() is None:
            p.kill()
            kills += 1
        p.wait()
        if (res / "lyrics_lstm" / "trials.csv").exists():
            check_invariants(res, "lyrics_lstm", small_lyrics)
    assert run(cmd).returncode == 0
    check_invariants(res, "lyrics_lstm", small_lyrics, finished_expected=6)
    assert kills >= 1


def test_ctrl_c_saves_and_says_how_to_resume(tmp_path, small_lyrics):
    res = tmp_path / "r"
    cmd = search_cmd("lyrics_lstm", small_lyrics, res, 4)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 120
    while time.time() < deadline and not (res / "lyrics_lstm" / "trials.csv").exists():
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "run the same command again to resume" in err and "Traceback" not in err
    before = check_invariants(res, "lyrics_lstm", small_lyrics)
    assert 1 <= len(before) < 4
    assert run(cmd).returncode == 0
    after = check_invariants(res, "lyrics_lstm", small_lyrics, finished_expected=4)
    # the trials finished before Ctrl-C are unchanged (later trials may add hyperparameter columns)
    pd.testing.assert_frame_equal(after.iloc[:len(before)][before.columns], before, check_dtype=False)


def test_a_hard_ctrl_c_leaves_one_number_per_trial(tmp_path, small_lyrics):
    """Two Ctrl-C in the second trial (issue 42): the search stops at once (exit 130), and after the resume the
    Optuna record and trials.csv number every trial alike; the cut attempt is in the record only."""
    import optuna

    from lyrics_cifar_search.runners import record
    res = tmp_path / "r"
    cmd = search_cmd("lyrics_lstm", small_lyrics, res, 2, "--epochs", "300")  # the last --epochs counts: trials to cut
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 240
    while time.time() < deadline and not (res / "lyrics_lstm" / "histories" / "trial_1.csv").exists():
        time.sleep(0.1)  # the second trial has trained an epoch
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert run(cmd, timeout=600).returncode == 0
    t = check_invariants(res, "lyrics_lstm", small_lyrics, finished_expected=2)
    study = optuna.load_study(study_name="lyrics_lstm", storage=record.storage_url(res))
    states = [(s.number, s.state.name) for s in study.trials]
    if states[1] == (1, "COMPLETE"):  # trial 1 ended on its own (early stopping) between the two Ctrl-C: no cut
        assert states == [(0, "COMPLETE"), (1, "COMPLETE")] and t["trial_id"].tolist() == [0, 1]  # (a CI run, once)
        return
    assert states == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE")]
    assert t["trial_id"].tolist() == [0, 2]


def test_a_second_search_on_the_same_folder_is_refused(tmp_path, small_lyrics, capsys):
    res = tmp_path / "r"
    held = hold_lock(res / "lyrics_tfidf_logreg")
    try:
        code = cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), *FAST])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "another search is running" in err and str(os.getpid()) in err
        assert not (res / "lyrics_tfidf_logreg" / "trials.csv").exists()
    finally:
        held.close()
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "1",
                *FAST]) == 0


def test_state_problems(tmp_path, small_lyrics, capsys):
    res = tmp_path / "r"
    args = ["--data", str(small_lyrics), "--results-dir", str(res), "--epochs", "1", *FAST]
    assert cli(["lyrics_lstm", "--max-trials", "2", *args]) == 0
    good = pd.read_csv(res / "lyrics_lstm" / "trials.csv")
    # a truncated trials.csv is rewritten from the tuner's own state on the next start
    (res / "lyrics_lstm" / "trials.csv").write_text("trial_id,sta")
    assert cli(["lyrics_lstm", "--max-trials", "2", *args]) == 0
    assert pd.read_csv(res / "lyrics_lstm" / "trials.csv").equals(good)
    # a corrupted cache is rebuilt
    for c in (res / "_cache").glob("lyrics-*.npz"):
        c.write_bytes(b"junk")
    assert cli(["lyrics_lstm", "--max-trials", "2", *args]) == 0
    assert "unreadable" in capsys.readouterr().err
    # damaged tuner state: one line, exit 2, results untouched
    trial_json = next((res / "lyrics_lstm" / "keras_tuner").glob("trial_*/trial.json"))
    trial_json.write_text("{not json")
    before = (res / "lyrics_lstm" / "trials.csv").read_bytes()
    assert cli(["lyrics_lstm", "--max-trials", "3", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "damaged" in err and "--fresh" in err and len(err.splitlines()) == 1
    assert (res / "lyrics_lstm" / "trials.csv").read_bytes() == before


def test_unwritable_results_folder(tmp_path, small_lyrics, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for where in (blocker / "results", Path("/proc/no-such-results")):
        code = cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(where), *FAST])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err


def test_keras_stops_after_three_consecutive_failures(tmp_path, capsys):
    import keras_tuner as kt
    from lyrics_cifar_search.runners import keras_search as keras_engine
    from lyrics_cifar_search.search_spaces import KerasFamily
    from lyrics_cifar_search.runners.prepare import Prepared

    class AlwaysNaN(kt.HyperModel):
        def __init__(self, spec):
            super().__init__()

        def build(self, hp):
            hp.Choice("variant", ["a", "b", "c", "d", "e"], default="a")
            inp = keras.Input((2,), name="x")
            out = keras.layers.Dense(2, activation="softmax",
                                     kernel_initializer=keras.initializers.Constant(float("nan")))(inp)
            m = keras.Model({"x": inp}, out)
            m.compile("adam", "sparse_categorical_crossentropy")
            return m

    family = KerasFamily("nan_family", "lyrics", "keras_tuner", "fake", hypermodel=AlwaysNaN, epochs=1)
    x, y = {"x": np.ones((8, 2), "float32")}, np.array([0, 1] * 4)
    prepared = Prepared(x, y, x, y, ["a", "b"], {}, {}, {})
    rows = keras_engine.run(family, prepared, tmp_path, max_trials=5, epochs=1, tuner="random", seed=0)
    assert len(rows) == 3 and all(r["status"] == "FAIL" for r in rows)
    # the line the Optuna engine ends such a search with too (runners/trial_end.py, test_failed_trials)
    assert re.search(r"^nan_family: 3 trials failed in a row \(last: .*NaN.*\); stopping the search$",
                     capsys.readouterr().err, re.M)


def test_hostile_model_files_are_refused(tmp_path, capsys):
    # a Keras model carrying a Lambda layer (arbitrary Python) is refused by safe mode
    folder = tmp_path / "r" / "lyrics_lstm" / "best"
    folder.mkdir(parents=True)
    inp = keras.Input((3,))
    keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp)).save(folder / "model.keras")
    (folder / "tokenizer.json").write_text(TextEncoder(vocab=["a"]).to_json())
    (folder / "meta.json").write_text('{"family": "lyrics_lstm", "engine": "keras_tuner", "inputs": "sequences", '
                                      '"label_names": ["a", "b"], "model_file": "model.keras"}')
    with pytest.raises(UserError, match="Lambda"):
        load_best("lyrics_lstm", tmp_path / "r")
    # a scikit-learn file holding a function that runs commands is refused before loading
    from sklearn.preprocessing import FunctionTransformer
    sk = tmp_path / "r" / "lyrics_tfidf_logreg" / "best"
    sk.mkdir(parents=True)
    sio.dump(FunctionTransformer(func=os.system), sk / "model.skops")
    (sk / "tokenizer.json").write_text(TextEncoder(vocab=["a"]).to_json())
    (sk / "meta.json").write_text('{"family": "lyrics_tfidf_logreg", "engine": "optuna", "inputs": "texts", '
                                  '"label_names": ["a", "b"], "model_file": "model.skops"}')
    with pytest.raises(UserError, match="refusing to load"):
        load_best("lyrics_tfidf_logreg", tmp_path / "r")


@pytest.mark.parametrize("family", ["lyrics_lstm", "lyrics_tfidf_logreg"])
def test_same_command_same_seed_same_trials(family, tmp_path, small_lyrics):
    tables = []
    for name in ("a", "b"):
        res = tmp_path / name
        assert cli([family, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "4",
                    "--epochs", "1", "--seed", "7", *FAST]) == 0
        t = pd.read_csv(res / family / "trials.csv")
        tables.append(t[[c for c in t.columns if c.startswith("hp_")]])
        meta = load_best(family, res).meta["data"]
        assert meta["rows"] == load_best(family, tmp_path / "a").meta["data"]["rows"]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert len(tables[0].drop_duplicates()) == 4
