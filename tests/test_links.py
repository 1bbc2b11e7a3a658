"""Links planted in a results folder (issue 28): wherever the suite writes in place, a symbolic link (dangling
or not) or a hard-linked file is refused with one line naming it, and what it reaches stays unchanged."""

import hashlib
import os
import shutil
import sqlite3

import pytest

from lyrics_cifar_search.runners.search import cli

FAST = ["--seq-len", "30", "--vocab-size", "300"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_lyrics):
    res = tmp_path_factory.mktemp("links") / "results"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "2",
                *FAST]) == 0
    return res


def sqlite_file(path):
    with sqlite3.connect(path) as db:
        db.execute("create table precious (x)")
        db.execute("insert into precious values (42)")
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def plant_symlink(res, outside, name):
    target = res / name
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    target.symlink_to(outside)


def plant_hardlink(res, outside, name):
    (res / name).unlink(missing_ok=True)
    os.link(outside, res / name)


# (where, how, what it points to): each a place the suite writes in place
CASES = {
    "study db -> outside file": ("optuna.db", plant_symlink, "file"),
    "study db -> nowhere": ("optuna.db", plant_symlink, "missing"),
    "study db hard-linked": ("optuna.db", plant_hardlink, "file"),
    "folder lock hard-linked": (".lyrics_tfidf_logreg.lock", plant_hardlink, "file"),
    ".best.lock -> nowhere": ("lyrics_tfidf_logreg/.best.lock", plant_symlink, "missing"),
    "_cache -> outside folder": ("_cache", plant_symlink, "folder"),
    "model store -> outside folder": ("artifacts", plant_symlink, "folder"),
    "trials.csv hard-linked": ("lyrics_tfidf_logreg/trials.csv", plant_hardlink, "file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_planted_link_is_refused_and_not_written_through(tmp_path, finished, small_lyrics, capsys, case):
    name, plant, kind = CASES[case]
    res = tmp_path / "results"
    shutil.copytree(finished, res, symlinks=True)
    outside = tmp_path / "outside"
    if kind == "file":
        outside = sqlite_file(tmp_path / "outside.db")
    elif kind == "folder":
        outside.mkdir()
    plant(res, outside, name)
    before = digest(outside) if kind == "file" else sorted(os.listdir(outside)) if kind == "folder" else None
    capsys.readouterr()
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                "--seq-len", "31", *FAST[2:]]) == 2  # other data options too: its cache would be new
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(res / name) in err and ("symbolic link" in err or "hard link" in err)
    if kind == "file":
        assert digest(outside) == before
    elif kind == "folder":
        assert sorted(os.listdir(outside)) == before
    else:
        assert not outside.exists()


def test_a_refused_rerun_writes_no_data_cache(tmp_path, finished, small_lyrics, capsys):
    """A re-run on other data options is refused by the resume guard before the new arrays reach _cache."""
    res = tmp_path / "results"
    shutil.copytree(finished, res, symlinks=True)
    before = sorted(p.name for p in (res / "_cache").iterdir())
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                "--seq-len", "31", "--vocab-size", "300"]) == 2
    assert "--fresh" in capsys.readouterr().err
    assert sorted(p.name for p in (res / "_cache").iterdir()) == before
