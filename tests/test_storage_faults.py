"""The record's database refusing writes (issue 40): an immutable --storage database, and a file-size limit hit
while the record is written. One line, exit 2, and the finished rows stay as they were."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # subprocesses

ROOT = Path(__file__).resolve().parents[1]


def cmd(data, res, trials, *extra):
    return [sys.executable, str(ROOT / "runners" / "search.py"), "lyrics_tfidf_logreg", "--data", str(data),
            "--results-dir", str(res), "--max-trials", str(trials), *extra]


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, **kw)


def one_error_line(out):
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in out.stderr and len(errors) == 1 and "cannot write" in errors[0], out.stderr[-2000:]


def test_an_immutable_storage_database_gives_one_line(tmp_path, small_lyrics):
    db, res = tmp_path / "s.db", tmp_path / "r"
    url = f"sqlite:///{db}"
    assert run(cmd(small_lyrics, res, 2, "--storage", url)).returncode == 0
    rows = (res / "lyrics_tfidf_logreg" / "trials.csv").read_bytes()
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here (root writes through file permissions)")
    try:
        out = run(cmd(small_lyrics, res, 3, "--storage", url))
    finally:
        subprocess.run(["chattr", "-i", str(db)])
    one_error_line(out)
    assert (res / "lyrics_tfidf_logreg" / "trials.csv").read_bytes() == rows
    (name,) = optuna.get_all_study_names(storage=url)
    assert len(optuna.load_study(study_name=name, storage=url).trials) == 2


def test_a_file_size_limit_while_the_record_is_written_gives_one_line(tmp_path, small_lyrics):
    res = tmp_path / "r"
    assert run(cmd(small_lyrics, res, 2)).returncode == 0
    db = res / "optuna.db"
    rows = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    limit = db.stat().st_size + 4096  # room for a little, not for the many trials asked for

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = run(cmd(small_lyrics, res, 200), preexec_fn=cap)
    one_error_line(out)
    after = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert after.iloc[:len(rows)].equals(rows)  # the finished rows are intact
    study = optuna.load_study(study_name="lyrics_tfidf_logreg", storage=f"sqlite:///{db}")
    assert sum(t.state.name == "COMPLETE" for t in study.trials) >= 2
