"""Optuna workers sharing a study through PostgreSQL (a throwaway server on loopback; skipped without one)."""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from lyrics_cifar_search.runners.search import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]


from test_workers import FAST, check_exactly_once  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them


def _as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on loopback (Debian's postgresql package)."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if not initdb:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run the server as")
    pytest.importorskip("psycopg")  # the `postgres` extra's driver
    bindir = Path(initdb).parent
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    os.chown(root, pw.pw_uid, pw.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]), check=True,
                   capture_output=True)
    pg_ctl = shutil.which("pg_ctl") or str(bindir / "pg_ctl")
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                                 f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        createdb = shutil.which("createdb") or str(bindir / "createdb")
        subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna"], check=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def worker(small_lyrics, res, url, trials, env=None):
    return subprocess.run([sys.executable, str(ROOT / "runners" / "search.py"), "lyrics_tfidf_logreg", "--data",
                           str(small_lyrics), "--results-dir", str(res), "--max-trials", str(trials),
                           "--storage", url, "--worker", *FAST],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_two_workers_on_postgresql(tmp_path, small_lyrics, postgres_url):
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "10",
                "--workers", "2", "--storage", postgres_url, *FAST]) == 0
    check_exactly_once(res, "lyrics_tfidf_logreg", 10)


def test_a_killed_workers_trial_is_retried(tmp_path, small_lyrics, postgres_url):
    url = postgres_url.replace("/optuna", "/postgres")  # a study of its own
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "2",
                "--storage", url, *FAST]) == 0
    # this worker dies in the middle of its first trial, leaving it RUNNING
    dead = worker(small_lyrics, res, url, 5, env={"SEARCH_SUITE_CRASH_AT": "trial-started"})
    assert dead.returncode == 137
    import optuna
    (name,) = [n for n in optuna.get_all_study_names(url) if n.startswith("lyrics_tfidf_logreg-")]  # its own name
    study = optuna.load_study(study_name=name, storage=url)
    stale = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(stale) == 1
    time.sleep(16)  # heartbeat every 5 s, grace 15 s: the dead worker's trial is now stale
    alive = worker(small_lyrics, res, url, 5)
    assert alive.returncode == 0, alive.stderr[-2000:]
    study = optuna.load_study(study_name=name, storage=url)
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == stale[0].number]
    assert len(retried) == 1 and retried[0].params == stale[0].params
    assert retried[0].state == optuna.trial.TrialState.COMPLETE
    t = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert len(t) == 5 and stale[0].number not in set(t["trial_id"]) and (t["status"] == "COMPLETE").all()


def test_two_hosts_sharing_postgresql_and_a_store_end_with_one_set_of_models(tmp_path, small_lyrics, postgres_url):
    """Issue 50: two processes in results folders of their own, one study in PostgreSQL and one model store;
    load_best from a third folder, given the URL (and study=, as the database holds other searches of the family),
    loads the search's best whichever host trained it."""
    from test_model_store import two_hosts
    two_hosts(tmp_path, small_lyrics, postgres_url, named=True)
