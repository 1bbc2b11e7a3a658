"""Comparisons that are like for like: a resume never mixes data or options,
the baseline trains with the full budget under every tuner, the objective is
the one asked for, and best_epoch names the epoch whose weights were kept."""

import hashlib
import json

import pandas as pd
import pytest

from lyrics_cifar_search.analysis import compare
from lyrics_cifar_search.runners.keras_search.trial import EpochLog
from lyrics_cifar_search.runners.search import cli

FAST = ["--seq-len", "30", "--vocab-size", "300"]


def digest(folder):
    """Hash of every file under a results folder (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_lyrics):
    """A finished Optuna search and a finished Keras search on a real file."""
    res = tmp_path_factory.mktemp("guard") / "results"
    for family, extra in (("lyrics_tfidf_logreg", []), ("lyrics_lstm", ["--epochs", "1"])):
        assert cli([family, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "2",
                    *FAST, *extra]) == 0
    return res


CHANGES = [
    ([], "data (file bytes)"),  # no --data: the generated demo set
    (["--seed", "7"], "--seed"),
    (["--seq-len", "40"], "--seq-len"),
    (["--vocab-size", "200"], "--vocab-size"),
    (["--sample-fraction", "0.5"], "--sample-fraction"),
    (["--stopwords", "none"], "--stopwords"),
    (["--objective", "val_macro_f1"], "--objective"),
]


# every change on the Optuna engine; the Keras engine (slower to start) on two of them
@pytest.mark.parametrize("family, change, named", [("lyrics_tfidf_logreg", *c) for c in CHANGES]
                         + [("lyrics_lstm", *c) for c in CHANGES[:3]])
def test_a_resume_with_other_data_or_options_is_refused(finished, small_lyrics, family, change, named, capsys,
                                                        tmp_path):
    folder = finished / family
    before = digest(folder)
    data = [] if not change else ["--data", str(small_lyrics)]
    flags = dict(zip(FAST[::2], FAST[1::2]))
    for flag, value in zip(change[::2], change[1::2]):
        flags[flag] = value
    argv = [family, *data, "--results-dir", str(finished), "--max-trials", "3",
            *[x for kv in flags.items() for x in kv]]
    capsys.readouterr()
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and named in err[0] and "--fresh" in err[0]
    assert digest(folder) == before  # nothing touched


@pytest.mark.parametrize("family, change, named", [
    ("lyrics_lstm", ["--epochs", "3"], "--epochs (the epoch budget of a trial): was 1, now 3"),
    ("lyrics_lstm", ["--epochs", "1", "--tuner", "hyperband"], "--tuner: was optuna, now hyperband"),
    ("lyrics_lstm", ["--epochs", "1", "--pruner", "none"], "--pruner: was median, now none"),
    ("lyrics_tfidf_logreg", ["--sampler", "random"], "--sampler: was tpe, now random")])
def test_a_resume_with_another_budget_or_tuner_is_refused(finished, small_lyrics, family, change, named, capsys):
    """A 1-epoch baseline beside 3-epoch trials, or trials of two samplers, would not be like for like."""
    folder = finished / family
    before = digest(folder)
    argv = [family, "--data", str(small_lyrics), "--results-dir", str(finished), "--max-trials", "4", *FAST, *change]
    capsys.readouterr()
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "Traceback" not in err[0]
    assert digest(folder) == before


def test_word_vectors_edited_in_place_are_refused(small_lyrics, tmp_path, capsys):
    vectors = tmp_path / "vec.txt"
    vectors.write_text("love 1 2 3\nnight 4 5 6\n")
    res = tmp_path / "results"
    argv = ["lyrics_glove", "--data", str(small_lyrics), "--results-dir", str(res), "--epochs", "1",
            "--max-trials", "1", "--embeddings", str(vectors), *FAST]
    assert cli(argv) == 0
    vectors.write_text("love 9 9 9\nnight 4 5 6\n")  # same path, other vectors
    before = digest(res / "lyrics_glove")
    capsys.readouterr()
    assert cli([*argv[:-len(FAST) - 4], "--max-trials", "2", "--embeddings", str(vectors), *FAST]) == 2
    assert "--embeddings (file bytes)" in capsys.readouterr().err and digest(res / "lyrics_glove") == before


def test_embeddings_file_is_part_of_the_record(finished, small_lyrics, tmp_path, capsys):
    vectors = tmp_path / "vec.txt"
    vectors.write_text("love 1 2 3\nnight 4 5 6\n")
    before = digest(finished / "lyrics_lstm")
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(finished), "--epochs", "1",
                "--embeddings", str(vectors), *FAST]) == 2
    assert "--embeddings" in capsys.readouterr().err and digest(finished / "lyrics_lstm") == before


def test_the_same_command_resumes_and_fresh_starts_again(finished, small_lyrics, tmp_path):
    import shutil
    res = tmp_path / "results"
    shutil.copytree(finished, res)
    t = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    record = json.loads((res / "lyrics_tfidf_logreg" / "search.json").read_text())
    assert t["data_fingerprint"].nunique() == 1 and t["data_fingerprint"][0] == record["data_fingerprint"]
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                *FAST]) == 0
    assert len(pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")) == 3
    assert cli(["lyrics_tfidf_logreg", "--results-dir", str(res), "--max-trials", "1", "--fresh", *FAST]) == 0
    demo = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert len(demo) == 1 and demo["data_fingerprint"][0] != record["data_fingerprint"]


@pytest.mark.slow
def test_hyperband_trains_the_baseline_with_the_full_budget(tmp_path, small_lyrics):
    res = tmp_path / "results"
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(res), "--tuner", "hyperband",
                "--epochs", "3", "--max-trials", "2", *FAST]) == 0
    t = pd.read_csv(res / "lyrics_lstm" / "trials.csv")
    assert bool(t["is_baseline"][0]) and t["hp_epochs_budget"].tolist() == [3, 1]  # the bracket's share: 1
    assert t["epochs_run"][0] == 3 and len(pd.read_csv(res / "lyrics_lstm" / "histories" / "trial_0.csv")) == 3


@pytest.mark.slow
@pytest.mark.parametrize("family", ["lyrics_tfidf_logreg", "lyrics_lstm"])
def test_objective_macro_f1_drives_both_engines(tmp_path, small_lyrics, family):
    res = tmp_path / "results"
    assert cli([family, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3", "--epochs", "1",
                "--objective", "val_macro_f1", *FAST]) == 0
    t = pd.read_csv(res / family / "trials.csv")
    meta = json.loads((res / family / "best" / "meta.json").read_text())
    assert meta["objective"] == ["val_macro_f1", "max"]
    best_ids = t.loc[t["val_macro_f1"] == t["val_macro_f1"].max(), "trial_id"].astype(str).tolist()
    assert str(meta["trial_id"]) in best_ids and meta["metrics"]["val_macro_f1"] == pytest.approx(t["val_macro_f1"].max())
    row = compare.compare(res)["comparison_lyrics"].iloc[0]
    assert row["objective"] == "val_macro_f1" and row["best_score"] == pytest.approx(t["val_macro_f1"].max())


def test_objective_is_refused_for_the_autoencoder(tmp_path, capsys):
    assert cli(["cifar_autoencoder", "--data", "demo", "--results-dir", str(tmp_path), "--objective",
                "val_accuracy"]) == 2
    assert "reconstruction" in capsys.readouterr().err


def test_best_epoch_names_the_kept_weights_of_a_second_fit(tmp_path):
    log = EpochLog(tmp_path / "h.csv", 6)
    log.on_train_begin()
    for e, loss in enumerate([0.5, 0.4, 0.45]):  # first phase: its best is epoch 2
        log.on_epoch_end(e, {"loss": 1.0, "val_loss": loss})
    log.on_train_begin()  # fine-tuning: a second fit whose early stopping restores its own best
    for e, loss in enumerate([0.6, 0.55, 0.58], start=3):
        log.on_epoch_end(e, {"loss": 1.0, "val_loss": loss})
    assert log.best_epoch() == 5  # not epoch 2, whose weights were trained on
    assert log.best_epoch(restored=False) == 6


@pytest.mark.slow
def test_trial_ids_keep_one_format_across_a_resume(tmp_path, small_lyrics, capsys):
    """Keras Tuner pads its ids to the digits of --max-trials ("0" with 1 trial, "05" with 10): the suite
    writes every id as a plain number, in trials.csv, the trial lines, histories/ and best/."""
    res = tmp_path / "results"
    argv = ["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(res), "--epochs", "1", *FAST]
    assert cli([*argv, "--max-trials", "1"]) == 0
    assert cli([*argv, "--max-trials", "10"]) == 0
    out = capsys.readouterr().out
    ids = pd.read_csv(res / "lyrics_lstm" / "trials.csv", dtype={"trial_id": str})["trial_id"].tolist()
    assert ids == [str(i) for i in range(10)]
    assert sorted(p.name for p in (res / "lyrics_lstm" / "histories").iterdir()) == \
        sorted(f"trial_{i}.csv" for i in range(10))
    assert "[lyrics_lstm] trial 5 " in out and "trial 05" not in out
    meta = json.loads((res / "lyrics_lstm" / "best" / "meta.json").read_text())
    assert str(meta["trial_id"]) in ids
