"""One study per search, whatever happened to the results folder (issue 40): the record outlives the folder, so a
study that holds trials is checked against the search (family, variant, data fingerprint, seed, objective,
epoch budget, tuner, sampler, pruner) before any trial is added; anything else is one line, exit 2, and the
study is left as it was."""

import shutil

import optuna
import pandas as pd
import pytest

from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.study_data.lyrics_demo import make_demo_table

FAST = ["--seq-len", "30", "--vocab-size", "300"]


@pytest.fixture(scope="module")
def other_lyrics(tmp_path_factory):
    return make_demo_table(tmp_path_factory.mktemp("other") / "other.csv", n_rows=300, seed=7, own_share=0.1)


def search(family, data, res, *extra, trials=2):
    return cli([family, "--data", str(data), "--results-dir", str(res), "--max-trials", str(trials), *FAST,
                *(["--epochs", "1"] if family != "lyrics_tfidf_logreg" else []), *extra])


def trials_of(url, name):
    return [(t.number, t.state.name) for t in optuna.load_study(study_name=name, storage=url).trials]


@pytest.mark.parametrize("family", ["lyrics_tfidf_logreg", pytest.param("lyrics_rnn", marks=pytest.mark.slow)])
def test_a_deleted_folder_then_other_data_is_refused(tmp_path, small_lyrics, other_lyrics, family, capsys):
    """The folder deleted by hand (or by a --fresh killed right after it deleted it): the study in
    results/optuna.db still holds the old data's trials, and a run on other data may not adopt them."""
    res = tmp_path / "r"
    assert search(family, small_lyrics, res) == 0
    url = f"sqlite:///{res / 'optuna.db'}"
    before = trials_of(url, family)
    shutil.rmtree(res / family)
    capsys.readouterr()
    assert search(family, other_lyrics, res, trials=4) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data_fingerprint" in err and "--fresh" in err, err
    assert trials_of(url, family) == before
    if family == "lyrics_tfidf_logreg":  # the same data again: the same search, which resumes from its study
        assert search(family, small_lyrics, res, trials=3) == 0
        assert len(pd.read_csv(res / family / "trials.csv")) == 3
    else:  # Keras Tuner resumes from its own state, which went with the folder: refused, not run twice
        assert search(family, small_lyrics, res, trials=3) == 2
        assert "Keras Tuner state" in capsys.readouterr().err and trials_of(url, family) == before
    # --fresh discards the old study and starts the other data's
    assert search(family, other_lyrics, res, "--fresh", trials=2) == 0
    assert len(trials_of(url, family)) == 2


def test_a_study_made_by_plain_optuna_is_not_adopted(tmp_path, small_lyrics, capsys):
    res, url = tmp_path / "r", f"sqlite:///{tmp_path / 'shared.db'}"
    assert search("lyrics_tfidf_logreg", small_lyrics, res, "--storage", url) == 0
    (name,) = optuna.get_all_study_names(storage=url)
    optuna.delete_study(study_name=name, storage=url)
    plain = optuna.create_study(study_name=name, storage=url, direction="maximize")
    for _ in range(3):
        t = plain.ask()
        plain.tell(t, 0.5)
    shutil.rmtree(res)
    capsys.readouterr()
    assert search("lyrics_tfidf_logreg", small_lyrics, res, "--storage", url, trials=5) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no search of this suite made" in err, err
    assert [s for _, s in trials_of(url, name)] == ["COMPLETE"] * 3 and not plain.user_attrs


def test_a_worker_on_other_data_adds_nothing(tmp_path, small_lyrics, other_lyrics, capsys):
    """The hidden --worker flag skips the resume guard (the process that started the workers checked it): the
    study's identity still refuses a worker run on other data."""
    res = tmp_path / "r"
    assert search("lyrics_tfidf_logreg", small_lyrics, res, trials=3) == 0
    url = f"sqlite:///{res / 'optuna.db'}"
    before = trials_of(url, "lyrics_tfidf_logreg")
    capsys.readouterr()
    assert search("lyrics_tfidf_logreg", other_lyrics, res, "--worker", trials=8) == 2
    assert "data_fingerprint" in capsys.readouterr().err
    assert trials_of(url, "lyrics_tfidf_logreg") == before
