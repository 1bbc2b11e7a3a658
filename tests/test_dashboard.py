"""One optuna-dashboard for every family: Keras Tuner and scikit-learn searches in one storage."""

import optuna
import pandas as pd
import pytest

from runners.search import cli

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them

FAST = ["--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]


def test_keras_and_sklearn_searches_are_studies_of_one_dashboard_storage(tmp_path, small_lyrics):
    res = tmp_path / "results"
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "2",
                "--epochs", "1", *FAST]) == 0
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                *FAST]) == 0
    storage = f"sqlite:///{res / 'optuna.db'}"  # what `optuna-dashboard sqlite:///results/optuna.db` opens
    assert sorted(s.study_name for s in optuna.get_all_study_summaries(storage)) == \
        ["lyrics_lstm", "lyrics_tfidf_logreg"]
    for name, n in (("lyrics_lstm", 2), ("lyrics_tfidf_logreg", 3)):
        study = optuna.load_study(study_name=name, storage=storage)
        table = pd.read_csv(res / name / "trials.csv")
        assert study.metric_names == ["val_accuracy"]
        assert study.user_attrs["family"] == name and study.user_attrs["seed"] == 42
        assert study.user_attrs["data_fingerprint"] == table["data_fingerprint"][0]
        trials = study.get_trials()
        assert len(trials) == n
        # the same ids and scores as trials.csv
        assert [t.user_attrs["trial_id"] for t in trials] == [str(i) for i in table["trial_id"]]
        assert [t.value for t in trials] == list(table["val_accuracy"])
        assert trials[0].user_attrs["is_baseline"] is True
    lstm = optuna.load_study(study_name="lyrics_lstm", storage=storage).trials[0]
    lr = lstm.distributions["learning_rate"]
    assert isinstance(lr, optuna.distributions.FloatDistribution) and lr.log  # Keras Tuner's log sampling kept
    assert isinstance(lstm.distributions["lstm_units"], optuna.distributions.CategoricalDistribution)
    tfidf = optuna.load_study(study_name="lyrics_tfidf_logreg", storage=storage).trials[0]
    assert isinstance(tfidf.distributions["C"], optuna.distributions.FloatDistribution) and tfidf.distributions["C"].log
    assert isinstance(tfidf.distributions["ngram_max"], optuna.distributions.IntDistribution)


def test_trial_lines_carry_the_ids_of_trials_csv_and_what_differs_from_the_baseline(tmp_path, small_lyrics,
                                                                                   capsys):
    res = tmp_path / "results"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                *FAST]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[lyrics_tfidf_logreg] trial")]
    table = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert [line.split()[2] for line in lines] == [str(i) for i in table["trial_id"]]
    assert "| baseline |" in lines[0] and "1 of 3 done" in lines[0]
    for line, (_, row) in zip(lines[1:], table.iloc[1:].iterrows()):
        assert f"C={row['hp_C']:.3g}" in line  # a searched value, shown beside its score
        assert f"val_accuracy {row['val_accuracy']:.4f}" in line
