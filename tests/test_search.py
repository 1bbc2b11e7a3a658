"""End-to-end searches through the CLI: real Keras Tuner and Optuna runs."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.search_spaces import lyrics_tfidf_logreg
from lyrics_cifar_search.study_data import lyrics
from lyrics_cifar_search.suite_common import UserError

ROOT = Path(__file__).resolve().parents[1]
# Small and quick: 400 generated rows, short sequences.
FAST = ["--sample-fraction", "1", "--seq-len", "40", "--vocab-size", "500"]


def run(*args):
    return cli([str(a) for a in args])


def trials(results, family):
    return pd.read_csv(results / family / "trials.csv")


def split_of(data_path, results, split="val"):
    d = lyrics.load(data_path, cache_dir=results / "_cache", sample_fraction=1.0, seq_len=40, vocab_size=500)
    return d, getattr(d, split)


@pytest.mark.slow
def test_lstm_search_saves_baseline_first_reloads_and_resumes(tmp_path, small_lyrics, capsys):
    res = tmp_path / "results"
    assert run("lyrics_lstm", "--data", small_lyrics, "--results-dir", res, "--max-trials", 2, "--epochs", 1, *FAST) == 0
    t = trials(res, "lyrics_lstm")
    assert len(t) == 2 and list(t["status"]) == ["COMPLETE", "COMPLETE"]
    base = t.iloc[0]
    assert bool(base["is_baseline"]) and not t["is_baseline"].iloc[1]
    assert (base["hp_embedding_dim"], base["hp_lstm_units"], base["hp_lstm_output"],
            base["hp_dropout"], base["hp_learning_rate"], base["hp_batch_size"]) == (100, 10, "flatten", 0.2, 1e-3, 1000)
    assert (t["epochs_run"] == 1).all() and (t["duration_s"] > 0).all()
    for tid in t["trial_id"]:
        hist = pd.read_csv(res / "lyrics_lstm" / "histories" / f"trial_{tid}.csv")
        assert list(hist["epoch"]) == [1] and {"loss", "val_loss", "val_accuracy"} <= set(hist.columns)

    # best/ holds the best trial's model: reloaded, it scores exactly that trial's val accuracy.
    model = load_best("lyrics_lstm", res)
    best = t.loc[t["val_accuracy"].idxmax()]
    assert str(model.meta["trial_id"]) == str(best["trial_id"]).zfill(len(str(model.meta["trial_id"])))
    d, val = split_of(small_lyrics, res)
    pred = model.model.predict({"lyrics": val.x}, verbose=0).argmax(1)
    assert np.mean(pred == val.y) == pytest.approx(best["val_accuracy"])
    # ... and predicts genres for raw lyrics with the saved tokenizer.
    raw = pd.read_csv(small_lyrics)["Lyrics"][:5].tolist()
    genres = model.predict(raw)
    assert len(genres) == 5 and set(genres) <= set(d.label_names)
    assert model.predict_proba(raw).shape == (5, len(d.label_names))

    # Same command again: nothing new, nothing repeated.
    assert run("lyrics_lstm", "--data", small_lyrics, "--results-dir", res, "--max-trials", 2, "--epochs", 1, *FAST) == 0
    assert trials(res, "lyrics_lstm").equals(t)
    # A larger total continues the search, and says so as the Optuna engine does (search_progress.resuming).
    capsys.readouterr()
    assert run("lyrics_lstm", "--data", small_lyrics, "--results-dir", res, "--max-trials", 3, "--epochs", 1, *FAST) == 0
    assert "resuming lyrics_lstm: 2 finished trials on record, running up to 3 in all" in capsys.readouterr().err
    t3 = trials(res, "lyrics_lstm")
    assert len(t3) == 3 and t3["trial_id"].is_unique and t3.iloc[:2].equals(t)


@pytest.mark.slow
def test_hyperband_runs_and_records_budgets(tmp_path, small_lyrics):
    res = tmp_path / "results"
    assert run("lyrics_lstm", "--data", small_lyrics, "--results-dir", res, "--max-trials", 2, "--epochs", 2,
               "--tuner", "hyperband", *FAST) == 0
    t = trials(res, "lyrics_lstm")
    assert len(t) == 2 and bool(t["is_baseline"].iloc[0]) and (t["hp_epochs_budget"] <= 2).all()
    # a budget of one epoch is one trial per bracket: brackets repeat until --max-trials
    assert run("lyrics_lstm", "--data", small_lyrics, "--results-dir", res, "--max-trials", 3, "--epochs", 1,
               "--tuner", "hyperband", "--fresh", *FAST) == 0
    assert len(trials(res, "lyrics_lstm")) == 3


def test_tfidf_search_baseline_resume_and_reload(tmp_path, small_lyrics, capsys):
    res = tmp_path / "results"
    assert run("lyrics_tfidf_logreg", "--data", small_lyrics, "--results-dir", res, "--max-trials", 3, *FAST) == 0
    t = trials(res, "lyrics_tfidf_logreg")
    assert len(t) == 3 and (t["status"] == "COMPLETE").all()
    base = t.iloc[0]
    assert bool(base["is_baseline"]) and t["is_baseline"].sum() == 1
    assert {k: base[f"hp_{k}"] for k in lyrics_tfidf_logreg.DEFAULTS} == lyrics_tfidf_logreg.DEFAULTS
    assert (t[["val_accuracy", "val_loss", "val_macro_f1"]].notna()).all().all()
    assert (res / "optuna.db").exists() and not (res / "lyrics_tfidf_logreg" / "optuna.db").exists()

    # where the result came from: when, which command, which versions, which code and machine
    meta = json.loads((res / "lyrics_tfidf_logreg" / "best" / "meta.json").read_text())
    made = meta["provenance"]
    assert made["versions"]["scikit-learn"] and made["versions"]["optuna"] and made["versions"]["python"]
    assert made["started_at"] <= meta["saved_at"] and made["machine"]["cpu_count"] >= 1 and made["command"]
    runs = json.loads((res / "lyrics_tfidf_logreg" / "search.json").read_text())["runs"]
    assert len(runs) == 1 and runs[0]["started_at"] == made["started_at"] and runs[0]["ended_at"] >= meta["saved_at"]

    model = load_best("lyrics_tfidf_logreg", res)
    d, val = split_of(small_lyrics, res)
    assert np.mean(model.model.predict(val.texts) == val.y) == pytest.approx(t["val_accuracy"].max())
    raw = pd.read_csv(small_lyrics)["Lyrics"][:3].tolist()
    assert model.predict(raw) == [d.label_names[i] for i in model.model.predict([d.encoder.preprocess(r) for r in raw])]

    assert run("lyrics_tfidf_logreg", "--data", small_lyrics, "--results-dir", res, "--max-trials", 3, *FAST) == 0
    assert trials(res, "lyrics_tfidf_logreg").equals(t)
    capsys.readouterr()
    assert run("lyrics_tfidf_logreg", "--data", small_lyrics, "--results-dir", res, "--max-trials", 5, *FAST) == 0
    assert "resuming lyrics_tfidf_logreg: 3 finished trials on record, running up to 5 in all" in capsys.readouterr().err
    t5 = trials(res, "lyrics_tfidf_logreg")
    assert len(t5) == 5 and t5.iloc[:3].equals(t)
    params = t5[[c for c in t5.columns if c.startswith("hp_")]].astype(str).agg("|".join, axis=1)
    assert params.is_unique  # the resumed sampler did not replay the first run's proposals


def test_feature_matrices_are_fitted_once_per_setting():
    from lyrics_cifar_search.runners.optuna_engine import FeatureCache
    from lyrics_cifar_search.search_spaces import get_family
    cache = FeatureCache(get_family("lyrics_tfidf_logreg"), ["aa bb cc", "bb cc dd", "cc dd ee"], ["aa ee"])
    p = dict(lyrics_tfidf_logreg.DEFAULTS)
    first = cache.get(p)
    second = cache.get({**p, "C": 5.0, "class_weight": "balanced"})  # classifier-only change
    third = cache.get({**p, "ngram_max": 2})
    fourth = cache.get({**p, "min_df": 2, "max_features": 2, "sublinear_tf": True})  # refined, not refitted
    assert first is second is fourth and third is not first
    assert (cache.misses, cache.hits) == (2, 2)


def test_refined_tfidf_equals_tfidfvectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(40)]
    params = {**lyrics_tfidf_logreg.DEFAULTS, "ngram_max": 2, "min_df": 2, "max_features": 1000000,
              "sublinear_tf": True}
    counts = lyrics_tfidf_logreg.make_features(params, {})
    xc = counts.fit_transform(texts)
    features, x_train, _ = lyrics_tfidf_logreg.refine_features(params, counts, xc, xc)
    direct = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts)
    assert list(features.named_steps["counts"].vocabulary) == list(direct.get_feature_names_out())
    assert np.abs(x_train - direct.transform(texts)).max() < 1e-12
    assert np.abs(features.transform(texts) - x_train).max() < 1e-12


@pytest.mark.parametrize("min_df", [1, 2])
def test_refined_tfidf_keeps_tfidfvectorizers_terms_when_max_features_cuts_through_ties(min_df):
    """Issue 41: over 5,000 terms, many with the same count at the cut: the 5,000 kept are TfidfVectorizer's."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(9000)]
    # counts 1, 2 or 3 only: thousands of terms tie at the 5,000th place
    texts = [" ".join(rng.choice(words, 60)) for _ in range(300)]
    params = {**lyrics_tfidf_logreg.DEFAULTS, "min_df": min_df}
    counts = lyrics_tfidf_logreg.make_features(params, {})
    xc = counts.fit_transform(texts)
    assert xc.shape[1] > 5000
    features, x_train, _ = lyrics_tfidf_logreg.refine_features(params, counts, xc, xc)
    direct = TfidfVectorizer(max_features=5000, min_df=min_df).fit(texts)
    assert list(features.named_steps["counts"].vocabulary) == list(direct.get_feature_names_out())
    assert np.abs(x_train - direct.transform(texts)).max() < 1e-12


def test_fresh_discards_the_previous_search(tmp_path, small_lyrics):
    res = tmp_path / "results"
    assert run("lyrics_tfidf_logreg", "--data", small_lyrics, "--results-dir", res, "--max-trials", 2, *FAST) == 0
    assert run("lyrics_tfidf_logreg", "--data", small_lyrics, "--results-dir", res, "--max-trials", 1,
               "--fresh", *FAST) == 0
    assert len(trials(res, "lyrics_tfidf_logreg")) == 1


@pytest.mark.slow
def test_real_subset_both_families(tmp_path, real_lyrics):
    res = tmp_path / "results"
    assert run("lyrics_tfidf_logreg", "--data", real_lyrics, "--results-dir", res, "--max-trials", 2) == 0
    assert run("lyrics_lstm", "--data", real_lyrics, "--results-dir", res, "--max-trials", 1, "--epochs", 1) == 0
    for family in ("lyrics_tfidf_logreg", "lyrics_lstm"):
        t = trials(res, family)
        assert (t["status"] == "COMPLETE").all() and bool(t["is_baseline"].iloc[0])
        m = load_best(family, res)
        assert m.label_names == ["Metal", "Pop", "Rock"] and m.meta["data"]["source"] == str(real_lyrics)
        assert set(m.predict(["I walk the lonely road tonight"])) <= {"Metal", "Pop", "Rock"}


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_lyrics):
    """A results folder with one finished search, to prove bad input leaves it alone."""
    res = tmp_path_factory.mktemp("finished") / "results"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res),
                "--max-trials", "2", *FAST]) == 0
    return res


def bad_inputs(tmp):
    (tmp / "empty.csv").write_bytes(b"")
    (tmp / "latin1.csv").write_bytes("lyrics,genre\ncafé olé,Pop\nnoël,Rock\n".encode("latin-1"))
    (tmp / "nocol.csv").write_text("song,year\nx,1999\n")
    (tmp / "one.csv").write_text("lyrics,genre\n" + "".join(f"la la {i},Pop\n" for i in range(30)))
    (tmp / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (tmp / "spaces.csv").write_text("lyrics genre\nla_la Pop\n")
    (tmp / "nolabels.csv").write_text("lyrics,genre\n" + "".join(f"la la {i},\n" for i in range(30)))
    (tmp / "noartist.csv").write_text("lyrics,genre\n" + "".join(f"la la {i},{'Pop' if i % 2 else 'Rock'}\n"
                                                                   for i in range(40)))
    (tmp / "emptydir").mkdir()
    os.mkfifo(tmp / "fifo.csv")  # no writer: reading it would wait for ever
    (tmp / "nan.txt").write_text("night 1 2 nan\nlove 1 2 3\n")
    return {
        "huge sequence length": (["lyrics_lstm", "--seq-len", "1000000000"], "--seq-len"),
        "huge vocabulary": (["lyrics_lstm", "--vocab-size", "100000000000"], "--vocab-size"),
        "a thousand workers": (["lyrics_tfidf_logreg", "--workers", "1000"], "--workers"),
        "NaN word vectors": (["lyrics_glove", "--embeddings", tmp / "nan.txt"], "not finite"),
        "a device as embeddings": (["lyrics_glove", "--embeddings", "/dev/zero"], "not a regular file"),
        "no language named": (["lyrics_tfidf_logreg", "--languages", ","], "--languages"),
        "tensorboard for Optuna": (["lyrics_tfidf_logreg", "--tensorboard", tmp / "tb"], "optuna-dashboard"),
        "negative seed": (["lyrics_tfidf_logreg", "--seed", "-1"], "--seed"),
        "seed of 2**32": (["lyrics_tfidf_logreg", "--seed", str(2 ** 32)], "--seed"),
        "seed of 2**32 - 1": (["lyrics_lstm", "--seed", str(2 ** 32 - 1)], "--seed"),
        "a pipe as data": (["lyrics_tfidf_logreg", "--data", tmp / "fifo.csv"], "not a regular file"),
        "a device as data": (["lyrics_tfidf_logreg", "--data", "/dev/zero"], "not a regular file"),
        "a pipe as test data": (["lyrics_tfidf_logreg", "--test-data", tmp / "fifo.csv"], "not a regular file"),
        "unknown family": (["lyrics_nope"], "`--list` shows all"),
        "misspelt family": (["lyrics_lstn"], "unknown family 'lyrics_lstn'; did you mean lyrics_lstm"),
        "missing file": (["lyrics_tfidf_logreg", "--data", tmp / "missing.csv"], "not found"),
        "empty table": (["lyrics_tfidf_logreg", "--data", tmp / "empty.csv"], "empty"),
        "non-UTF-8": (["lyrics_tfidf_logreg", "--data", tmp / "latin1.csv"], "UTF-8"),
        "missing column": (["lyrics_tfidf_logreg", "--data", tmp / "nocol.csv"], "its columns are: song, year"),
        "single class": (["lyrics_tfidf_logreg", "--data", tmp / "one.csv", "--sample-fraction", "1"], "two genres"),
        "negative trials": (["lyrics_tfidf_logreg", "--max-trials", "-3"], "--max-trials"),
        "fraction zero": (["lyrics_tfidf_logreg", "--sample-fraction", "0"], "--sample-fraction"),
        "fraction above one": (["lyrics_tfidf_logreg", "--sample-fraction", "1.5"], "--sample-fraction"),
        "wrong tuner": (["lyrics_tfidf_logreg", "--tuner", "hyperband"], "--tuner"),
        "unknown tuner": (["lyrics_lstm", "--tuner", "grid"], "--tuner"),
        "zero trials": (["lyrics_tfidf_logreg", "--max-trials", "0"], "--max-trials"),
        "zero epochs": (["lyrics_lstm", "--epochs", "0"], "--epochs"),
        "zero vocabulary": (["lyrics_lstm", "--vocab-size", "0"], "--vocab-size"),
        "bad seed": (["lyrics_lstm", "--seed", "abc"], "--seed"),
        "no family": ([], "name a family"),
        "binary file": (["lyrics_tfidf_logreg", "--data", tmp / "binary.csv"], "binary"),
        "wrong delimiter": (["lyrics_tfidf_logreg", "--data", tmp / "spaces.csv"], "no text column"),
        "NaN labels": (["lyrics_tfidf_logreg", "--data", tmp / "nolabels.csv"], "no row has both lyrics and a genre"),
        "folder as data": (["lyrics_tfidf_logreg", "--data", tmp], "is a folder"),
        "missing test file": (["lyrics_tfidf_logreg", "--test-data", tmp / "nope.csv"], "--test-data file not found"),
        "artist without column": (["lyrics_tfidf_logreg", "--with-artist", "--data", tmp / "noartist.csv",
                                   "--sample-fraction", "1"], "--with-artist needs an artist column"),
        "missing embeddings": (["lyrics_glove", "--embeddings", tmp / "nope.txt"], "--embeddings file not found"),
        "missing images": (["cifar_cnn", "--data", tmp / "no-images"], "image data not found"),
        "not an image tree": (["cifar_cnn", "--data", tmp / "emptydir"], "not an image-folder tree"),
        "zero images per class": (["cifar_cnn", "--images-per-class", "0"], "--images-per-class"),
    }


def test_bad_input_gets_one_line_exit_2_and_leaves_results(tmp_path, finished, capsys):
    before = {p: sha(p) for p in finished.rglob("*") if p.is_file()}
    cases = bad_inputs(tmp_path)
    assert len(cases) >= 20
    for case, (args, expected) in cases.items():
        capsys.readouterr()
        code = cli([str(a) for a in args] + ["--results-dir", str(finished), "--fresh"])
        err = capsys.readouterr().err.strip()
        assert code == 2, case
        assert expected in err and err.startswith("error: ") and len(err.splitlines()) == 1, (case, err)
    assert {p: sha(p) for p in before} == before  # every finished file still there, unchanged


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
    (tmp_path / "nocol.csv").write_text("song,year\nx,1999\n")
    for args in (["lyrics_nope"], ["lyrics_lstm", "--data", str(tmp_path / "nocol.csv")]):
        p = subprocess.run([sys.executable, str(ROOT / "runners" / "search.py"), *args],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert p.returncode == 2 and "Traceback" not in p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith("error: ")


def test_list_shows_every_family(capsys):
    from lyrics_cifar_search import search_spaces
    assert cli(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["family", "task", "engine", "description"]
    shown = {line.split()[0]: line.split(None, 3) for line in lines[1:]}
    assert list(shown) == list(search_spaces.families())  # every family, once, sorted
    for name, family in search_spaces.families().items():
        assert shown[name][1:] == [family.task, family.engine, family.description]


def test_a_best_model_loads_from_any_directory_and_results_are_readable_by_all(tmp_path, small_lyrics,
                                                                                monkeypatch):
    res = tmp_path / "results"
    old = os.umask(0o022)
    try:
        assert run("lyrics_tfidf_logreg", "--data", small_lyrics, "--results-dir", res, "--max-trials", 2,
                   *FAST) == 0
    finally:
        os.umask(old)
    folder = res / "lyrics_tfidf_logreg"
    for path in (folder / "trials.csv", folder / "search.json", folder / "best" / "meta.json",
                 folder / "best" / "model.skops"):
        assert path.stat().st_mode & 0o777 == 0o644, path  # what a plain open() makes, not mkstemp's 0600
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    by_name = load_best("lyrics_tfidf_logreg", results_dir=res)
    by_folder = load_best(str(folder / "best"))
    assert by_name.predict(["some words"]) == by_folder.predict(["some words"])
    with pytest.raises(UserError) as e:
        load_best("lyrics_tfidf_logreg", results_dir=res, with_artist=True)
    assert "python runners/search.py lyrics_tfidf_logreg --with-artist" in str(e.value)


@pytest.mark.parametrize("family", ["lyrics_tfidf_logreg", pytest.param("lyrics_lstm", marks=pytest.mark.slow)])
def test_trial_lines_carry_the_ids_of_trials_csv_and_what_differs_from_the_baseline(tmp_path, small_lyrics,
                                                                                   capsys, family):
    """Each engine's trial line comes from trials.csv's rows as written after that trial: its id, score and
    changed values, how many have ended and the best so far (the earliest of equal scores)."""
    res = tmp_path / "results"
    assert run(family, "--data", small_lyrics, "--results-dir", res, "--max-trials", 3, "--epochs", 1, *FAST) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"[{family}] trial")]
    table = pd.read_csv(res / family / "trials.csv")
    assert [line.split()[2] for line in lines] == [str(i) for i in table["trial_id"]]
    assert "| baseline |" in lines[0] and "1 of 3 done" in lines[0]
    best = None
    for i, (line, (_, row)) in enumerate(zip(lines, table.iterrows())):
        assert f"val_accuracy {row['val_accuracy']:.4f}" in line and f"{i + 1} of 3 done" in line
        if row["status"] == "COMPLETE" and (best is None or row["val_accuracy"] > best[1]):
            best = (row["trial_id"], row["val_accuracy"])
        assert f"best {best[1]:.4f} (trial {best[0]})" in line, line
        if family == "lyrics_tfidf_logreg" and i:
            assert f"C={row['hp_C']:.3g}" in line  # a searched value, shown beside its score


def test_both_engines_implement_the_engine_interface():
    """runners/engines.py: search, baseline and train_one, with the same parameters, in every engine."""
    import inspect

    from lyrics_cifar_search.runners import engines
    signatures = {}
    for kind, module in engines.ENGINES.items():
        engine = engines.engine(search_spaces_family(kind))
        assert engine.__name__ == module
        signatures[kind] = {name: list(inspect.signature(getattr(engine, name)).parameters)
                            for name in ("search", "baseline", "train_one")}
    assert signatures["keras_tuner"] == signatures["optuna"] == {
        "search": ["family", "prepared", "out_dir", "config"], "baseline": ["family", "prepared"],
        "train_one": ["family", "prepared", "params", "seed", "epochs"]}


def search_spaces_family(engine):
    from lyrics_cifar_search import search_spaces
    return next(f for f in map(search_spaces.describe, search_spaces.index()) if f.engine == engine)


def test_trials_csv_writes_integers_as_integers_and_no_float_noise(tmp_path):
    """Issue 42: a conditional integer hyperparameter (absent in some rows) was written 64.0, and a learning rate
    0.30000000000000004."""
    from lyrics_cifar_search.runners import trials_table
    rows = [trials_table.trial_row(0, "COMPLETE", True, {"units": 64, "rate": 0.1 + 0.2, "use": True},
                                   {"val_accuracy": 0.5, "epochs_run": 3.0, "best_epoch": 2.0}),
            trials_table.trial_row(1, "PRUNED", False, {"rate": 0.25, "use": False},
                                   {"val_accuracy": 0.25, "epochs_run": 1.0, "best_epoch": 1.0})]
    trials_table.write_trials_csv(tmp_path, rows)
    text = (tmp_path / "trials.csv").read_text()
    lines = text.splitlines()
    header = lines[0].split(",")
    first = dict(zip(header, lines[1].split(",")))
    second = dict(zip(header, lines[2].split(",")))
    assert first["hp_units"] == "64" and second["hp_units"] == ""
    assert first["hp_rate"] == "0.3" and first["epochs_run"] == "3" and first["hp_use"] == "True"
    assert "0.30000000000000004" not in text


def test_a_search_that_learned_nothing_says_so(tmp_path, capsys):
    """Issue 42: on lyrics whose genre is noise, every trial is within noise of always answering the most frequent
    genre: the trial lines and the summary say so, with what to try."""
    rng = np.random.default_rng(0)
    rows = [{"Artist": "a", "Genre": ("Rock", "Rock", "Pop")[i % 3],
             "Lyrics": " ".join(rng.choice([f"w{j}" for j in range(40)], 12))} for i in range(240)]
    pd.DataFrame(rows).to_csv(tmp_path / "noise.csv", index=False)
    assert run("lyrics_tfidf_logreg", "--data", tmp_path / "noise.csv", "--results-dir", tmp_path / "r",
               "--max-trials", 3, *FAST) == 0
    out = capsys.readouterr().out
    assert "none beyond always answering 'Rock'" in out
    assert "learned   nothing beyond always answering 'Rock'" in out and "more data, more epochs" in out


def test_chance_level_and_its_noise():
    from lyrics_cifar_search.runners import trials_table
    meta = {"label_names": ["Pop", "Rock"], "data": {"class_counts": {"train": [30, 70], "val": [25, 75],
                                                                        "test": [10, 10]}}}
    ref = trials_table.chance(meta, "val_accuracy")
    assert ref["what"] == "always answering 'Rock'" and ref["value"] == 0.75
    assert ref["margin"] == pytest.approx(2 * (0.75 * 0.25 / 100) ** 0.5)
    assert trials_table.learned_nothing(0.80, ref, "max") and not trials_table.learned_nothing(0.85, ref, "max")
    ae = trials_table.chance({"data": {"mean_image_val_mse": {"mse": 0.06, "se": 0.001}}}, "val_reconstruction_mse")
    assert trials_table.learned_nothing(0.0595, ae, "min") and not trials_table.learned_nothing(0.02, ae, "min")
