"""Processes (issue 28): workers die with the process that started them, killed -9 or not, so a re-run never
takes the lock beside them; SIGTERM is handled like Ctrl-C (the trial in progress finishes, the search stops
and says how to resume), passed on to workers and to a study's running search."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # real processes

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--seq-len", "30", "--vocab-size", "300"]


def start(args, **kw):
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, **kw)


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status waits to be read


def wait_until(condition, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def rows(res, family="lyrics_tfidf_logreg"):
    path = res / family / "trials.csv"
    return len(pd.read_csv(path)) if path.exists() else 0


def worker_pids(proc):
    """The pids from the '... workers started (processes a, b)' line."""
    for line in proc.stdout:
        if "workers started (processes" in line:
            return [int(p) for p in line.split("(processes ")[1].rstrip(")\n").split(", ")]
    raise AssertionError("no workers started")


def search_args(small_lyrics, res, trials, *extra):
    return ["lyrics_cifar_search.runners.search",
            "lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res),
            "--max-trials", str(trials), *FAST, *extra]


def test_workers_die_with_a_killed_parent(tmp_path, small_lyrics):
    res = tmp_path / "r"
    parent = start(search_args(small_lyrics, res, 500, "--workers", "2"))
    pids = worker_pids(parent)
    assert wait_until(lambda: rows(res) >= 2)
    parent.kill()  # kill -9: no handler runs
    parent.wait()
    assert wait_until(lambda: not any(alive(p) for p in pids), timeout=20), "a worker outlived its parent"
    # a re-run takes the folder alone and finishes the search
    n = rows(res)
    done = subprocess.run([sys.executable, "-m", *search_args(small_lyrics, res, n + 1)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_sigterm_stops_after_the_trial_and_says_how_to_resume(tmp_path, small_lyrics):
    res = tmp_path / "r"
    proc = start(search_args(small_lyrics, res, 500))
    assert wait_until(lambda: rows(res) >= 2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "SIGTERM: stopping after the trial in progress" in err and "run the same command again to resume" in err
    table = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert (table["status"] == "COMPLETE").all() and len(table) < 500


def test_sigterm_reaches_the_workers(tmp_path, small_lyrics):
    res = tmp_path / "r"
    parent = start(search_args(small_lyrics, res, 500, "--workers", "2"))
    pids = worker_pids(parent)
    assert wait_until(lambda: rows(res) >= 2)
    parent.send_signal(signal.SIGTERM)
    _, err = parent.communicate(timeout=120)
    assert parent.returncode == 130 and "run the same command again to resume" in err
    assert not any(alive(p) for p in pids)
    assert (pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")["status"] == "COMPLETE").all()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_studys_search_stops_with_the_study(tmp_path, small_lyrics, how):
    plan = tmp_path / "plan.toml"
    plan.write_text('[defaults]\nseq_len = 30\nvocab_size = 300\n[[search]]\nfamily = "lyrics_tfidf_logreg"\n'
                    "max_trials = 500\n")
    res = tmp_path / "r"
    study = start(["lyrics_cifar_search.runners.study",
                   str(plan), "--lyrics-data", str(small_lyrics), "--results-dir", str(res)])
    assert wait_until(lambda: rows(res) >= 2)
    lock = res / ".lyrics_tfidf_logreg.lock"
    child = int(lock.read_text())
    study.send_signal(getattr(signal, how))
    study.communicate(timeout=120)
    assert wait_until(lambda: not alive(child), timeout=60), "the study's search outlived it"
    if how == "SIGTERM":
        assert study.returncode == 130
    assert (pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")["status"] == "COMPLETE").all()
