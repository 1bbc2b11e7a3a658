"""The Python API (issue 49): a search run from Python as the command line runs it, on a path or a pandas
DataFrame, with the command line's options as keywords; its trials, best trial, baseline and models handed back;
the same record and resume rules; nothing printed; the README's "From Python" block runs as pasted."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lyrics_cifar_search import SearchResult, search
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.suite_common import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def as_a_library():
    """The lyrics_cifar_search loggers as a program that imports the suite finds them: no console set up (the
    conftest sets up the commands' console for every test)."""
    import logging
    logger = logging.getLogger("lyrics_cifar_search")
    logger.handlers[:], logger.propagate = [], True
    logger.setLevel(logging.NOTSET)


@pytest.mark.slow
def test_a_search_on_a_dataframe_resumes_and_is_refused_other_data(tmp_path, small_lyrics, capsys, as_a_library):
    frame = pd.read_csv(small_lyrics)
    res = tmp_path / "r"
    result = search("lyrics_tfidf_logreg", data=frame, max_trials=2, results_dir=res, seed=3)
    assert isinstance(result, SearchResult)
    assert capsys.readouterr().out == ""  # nothing printed unless asked
    assert list(result.trials["trial_id"]) == [0, 1] and result.trials["is_baseline"].tolist() == [True, False]
    assert result.baseline["trial_id"] == 0 and result.best_trial is not None
    assert result.best_params == {k[3:]: v for k, v in result.best_trial.items() if k.startswith("hp_")}
    assert {type(v) for v in result.best_params.values()} <= {bool, int, float, str}  # not NumPy's scalars
    assert len(result.best_model().predict(["love you baby tonight"])) == 1
    assert result.baseline_model().meta["is_baseline"]
    assert "best" in result.summary() and "baseline" in result.summary()
    again = search("lyrics_tfidf_logreg", data=frame.copy(), max_trials=3, results_dir=res, seed=3)  # same frame
    assert list(again.trials["trial_id"]) == [0, 1, 2]
    assert again.trials.iloc[:2].drop(columns=["duration_s"]).equals(
        result.trials.drop(columns=["duration_s"]))
    # the command line resumes the same search: the frame's CSV is the data
    saved = next((res / "_data").glob("frame-*.csv"))
    assert cli(["lyrics_tfidf_logreg", "--data", str(saved), "--results-dir", str(res), "--max-trials", "4",
                "--seed", "3", "--quiet"]) == 0
    with pytest.raises(UserError, match="other data or options"):
        search("lyrics_tfidf_logreg", data=frame.iloc[:300], max_trials=5, results_dir=res, seed=3)
    assert len(pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")) == 4  # nothing lost


def test_bad_options_raise_the_command_lines_one_line(tmp_path):
    with pytest.raises(UserError, match="max-trials"):
        search("lyrics_tfidf_logreg", max_trials=0, results_dir=tmp_path)
    with pytest.raises(UserError, match="unrecognized arguments: --max-trails"):
        search("lyrics_tfidf_logreg", max_trails=3, results_dir=tmp_path)
    with pytest.raises(UserError, match="path or a pandas DataFrame"):
        search("lyrics_tfidf_logreg", data=[1, 2], results_dir=tmp_path)
    assert not (tmp_path / "lyrics_tfidf_logreg").exists()


@pytest.mark.slow
def test_a_keras_family_from_python(tmp_path, small_lyrics):
    result = search("lyrics_rnn", data=small_lyrics, max_trials=2, epochs=1, seq_len=20, vocab_size=200,
                    results_dir=tmp_path, time_budget=600)
    assert len(result.trials) == 2 and result.objective == ("val_accuracy", "max")
    assert result.best_model().predict(["love you baby tonight"])[0] in result.best_model().label_names


def _readme_block():
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readmes_from_python_block_runs_as_pasted_from_an_empty_folder(tmp_path):
    out = subprocess.run([sys.executable, "-c", _readme_block()], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "val_accuracy" in out.stdout and (tmp_path / "results" / "lyrics_tfidf_logreg" / "trials.csv").exists()
    assert re.search(r"\['\w+', '\w+'\]", out.stdout)  # the two predicted genres


@pytest.mark.slow
def test_a_family_registered_in_this_process_searches_from_python(tmp_path, small_lyrics, own_families):
    """A notebook's own family: registered with register_family in the program, searched with search()."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from lyrics_cifar_search.search_spaces import register_family

    @register_family("x_notebook_family", task="lyrics", engine="optuna", description="a notebook's own",
                     inputs="texts", defaults={"C": 1.0}, make_features=lambda params, spec: CountVectorizer(),
                     make_classifier=lambda params, seed: LogisticRegression(C=params["C"], max_iter=300))
    def suggest(trial):
        return {"C": trial.suggest_float("C", 0.01, 10, log=True)}

    result = search("x_notebook_family", data=small_lyrics, max_trials=3, results_dir=tmp_path)
    assert len(result.trials) == 3 and result.baseline["hp_C"] == 1.0
    assert result.best_model().predict(["love you baby tonight"])[0] in result.best_model().label_names
