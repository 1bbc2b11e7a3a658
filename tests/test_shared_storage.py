"""A shared --storage (issue 28): the storage URL, the study's name (family, variant, what its trials mean) and
the results folder identify one search. Anything else is refused with one line before anything is written;
--fresh discards the study there; a kill -9 and an immediate resume end with every
trial finished and none left RUNNING."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from lyrics_cifar_search.runners.search import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--seq-len", "30", "--vocab-size", "300"]


def search(data, res, *extra, trials=2):
    return cli(["lyrics_tfidf_logreg", "--data", str(data), "--results-dir", str(res), "--max-trials", str(trials),
                *FAST, *extra])


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and p.suffix != ".lock":
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def studies(url):
    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage=url)}


def test_another_storage_is_refused_on_resume(tmp_path, small_lyrics, capsys):
    res = tmp_path / "r"
    assert search(small_lyrics, res) == 0
    before = digest(res / "lyrics_tfidf_logreg")
    capsys.readouterr()
    assert search(small_lyrics, res, "--storage", f"sqlite:///{tmp_path / 'other.db'}", trials=3) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--storage: was None, now sqlite:///" in err
    assert digest(res / "lyrics_tfidf_logreg") == before and not (tmp_path / "other.db").exists()


def test_a_study_in_storage_is_one_search(tmp_path, small_lyrics, capsys):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = tmp_path / "a", tmp_path / "b"
    assert search(small_lyrics, a, "--storage", url) == 0
    assert search(small_lyrics, a, "--storage", url, "--with-artist") == 0  # the variant: a study of its own
    assert search(small_lyrics, b, "--storage", url, "--seq-len", "31") == 0  # other data options: another
    names = studies(url)
    assert len(names) == 3 and all(n == 2 for n in names.values())
    assert sum(name.startswith("lyrics_tfidf_logreg_artist-") for name in names) == 1
    # the same search from another results folder would take over a's study: refused before anything is written
    capsys.readouterr()
    assert search(small_lyrics, tmp_path / "c", "--storage", url, trials=3) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "belongs to the search in" in err and str(a.resolve()) in err
    assert studies(url) == names and not (tmp_path / "c" / "lyrics_tfidf_logreg").exists()
    # a's rows are a's trials, on a's data
    rows = pd.read_csv(a / "lyrics_tfidf_logreg" / "trials.csv")
    assert len(rows) == 2 and rows["data_fingerprint"].nunique() == 1


def test_fresh_discards_the_study_in_storage(tmp_path, small_lyrics):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    res = tmp_path / "r"
    assert search(small_lyrics, res, "--storage", url, trials=3) == 0
    assert search(small_lyrics, res, "--storage", url, "--fresh", trials=2) == 0
    assert list(studies(url).values()) == [2]
    assert not (res / "optuna.db").exists()  # one record: the trials are in --storage alone
    assert len(pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")) == 2
    # without --storage too: the record keeps no trial of a discarded search
    assert search(small_lyrics, res, "--fresh", trials=1) == 0
    assert studies(f"sqlite:///{res / 'optuna.db'}") == {"lyrics_tfidf_logreg": 1}


@pytest.mark.slow
def test_a_kill_and_an_immediate_resume_leave_no_running_trial(tmp_path, small_lyrics):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    res = tmp_path / "r"
    cmd = [sys.executable, "-m", "lyrics_cifar_search.runners.search",
           "lyrics_tfidf_logreg", "--data", str(small_lyrics),
           "--results-dir", str(res), "--max-trials", "4", "--storage", url, *FAST]
    env = {**os.environ, "SEARCH_SUITE_CRASH_AT": "trial-started", "SEARCH_SUITE_CRASH_SKIP": "2"}
    killed = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 137  # like kill -9 in the third trial
    env.pop("SEARCH_SUITE_CRASH_AT")
    resumed = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (name,) = studies(url)
    states = [t.state.name for t in optuna.load_study(study_name=name, storage=url).trials]
    assert "RUNNING" not in states and states.count("COMPLETE") == 4
    rows = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert len(rows) == 4 and (rows["status"] == "COMPLETE").all()


def test_a_study_kept_in_the_search_folder_by_an_older_version_is_moved_into_the_record(tmp_path, small_lyrics):
    """Before the one record, an Optuna family's study lived in <search>/optuna.db under the family's name: a
    resume moves it into results/optuna.db and goes on from its trials."""
    res = tmp_path / "r"
    assert search(small_lyrics, res, trials=2) == 0
    old = res / "lyrics_tfidf_logreg" / "optuna.db"
    optuna.copy_study(from_study_name="lyrics_tfidf_logreg", from_storage=f"sqlite:///{res / 'optuna.db'}",
                      to_storage=f"sqlite:///{old}")  # the older layout
    (res / "optuna.db").unlink()
    assert search(small_lyrics, res, trials=3) == 0
    assert not old.exists() and studies(f"sqlite:///{res / 'optuna.db'}") == {"lyrics_tfidf_logreg": 3}
    rows = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert rows["trial_id"].tolist() == [0, 1, 2] and rows["is_baseline"].sum() == 1


def _resume_cmd(res, data, url, trials):
    return [sys.executable, "-m", "lyrics_cifar_search.runners.search",
            "lyrics_tfidf_logreg", "--data", str(data), "--results-dir",
            str(res), "--max-trials", str(trials), "--storage", url, *FAST]


@pytest.mark.slow
def test_a_resume_never_waits_on_a_trial_nobody_runs(tmp_path, small_lyrics):
    """Issue 40: a RUNNING trial with no heartbeat (here a plain `study.ask()`; a process killed before its first
    beat is the same) was skipped by Optuna's stale check, and the resume waited on it forever. It is failed and
    queued again within a few heartbeat intervals."""
    url, res = f"sqlite:///{tmp_path / 'shared.db'}", tmp_path / "r"
    assert search(small_lyrics, res, "--storage", url, trials=4) == 0
    (name,) = studies(url)
    optuna.load_study(study_name=name, storage=url).ask()  # nobody will ever run it
    started = time.time()
    resumed = subprocess.run(_resume_cmd(res, small_lyrics, url, 5), cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert time.time() - started < 90
    states = [t.state.name for t in optuna.load_study(study_name=name, storage=url).trials]
    assert "RUNNING" not in states and states.count("COMPLETE") == 5
    assert len(pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")) == 5


@pytest.mark.slow
def test_one_sigterm_ends_a_wait(tmp_path, small_lyrics):
    """A trial a live worker elsewhere holds (its heartbeat kept fresh here): the resume waits for it, and one
    SIGTERM (what `timeout` sends) ends the wait with the usual message."""
    url, res = f"sqlite:///{tmp_path / 'shared.db'}", tmp_path / "r"
    assert search(small_lyrics, res, "--storage", url, trials=2) == 0
    (name,) = studies(url)
    study = optuna.load_study(study_name=name, storage=url)
    held = study.ask()
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=4)
    proc = subprocess.Popen(_resume_cmd(res, small_lyrics, url, 3), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    beating = threading.Event()

    def beat():  # the live worker's heartbeat, all along (also after the SIGTERM)
        while not beating.wait(1):
            storage.record_heartbeat(held._trial_id)
    threading.Thread(target=beat, daemon=True).start()
    try:
        time.sleep(15)
        assert proc.poll() is None  # still waiting on the live trial
        proc.send_signal(signal.SIGTERM)
        sent = time.time()
        out, err = proc.communicate(timeout=20)
        assert time.time() - sent < 6  # the wait ends at once, not when the trial does
    finally:
        beating.set()
        proc.kill()
    assert proc.returncode == 130 and "run the same command again to resume" in err, err[-1500:]
