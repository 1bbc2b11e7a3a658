"""Comparison tables, report, demo: checked against the trials CSVs and the saved models."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lyrics_cifar_search.analysis import compare, demo, figures, report
from lyrics_cifar_search.suite_common import significance

UMASK = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("Umask:")), 8)
from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.study_data import images, lyrics

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them

FAST = ["--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]


@pytest.fixture(scope="module")
def res(tmp_path_factory, small_lyrics, cifar_chain):
    r = tmp_path_factory.mktemp("analysis") / "results"
    shutil.copytree(cifar_chain, r)  # cifar_cnn -> cifar_autoencoder -> cifar_transfer on the demo images
    runs = [["lyrics_tfidf_logreg", "--data", small_lyrics, "--max-trials", 4, *FAST],
            ["lyrics_tfidf_logreg", "--with-artist", "--data", small_lyrics, "--max-trials", 2, *FAST],
            ["lyrics_lstm", "--data", small_lyrics, "--max-trials", 2, "--epochs", 1, *FAST]]
    for args in runs:
        assert cli([str(a) for a in args] + ["--results-dir", str(r)]) == 0
    return r


@pytest.fixture(scope="module")
def tables(res):
    return compare.compare(res)


def test_comparison_rows_match_the_trials(res, tables, small_lyrics):
    lyr = tables["comparison_lyrics"]
    assert set(zip(lyr["family"], lyr["variant"])) == {("lyrics_tfidf_logreg", "lyrics"),
                                                       ("lyrics_tfidf_logreg", "lyrics+artist"),
                                                       ("lyrics_lstm", "lyrics")}
    for _, row in lyr.iterrows():
        folder = row["family"] + ("_artist" if row["variant"] == "lyrics+artist" else "")
        t = pd.read_csv(res / folder / "trials.csv")
        assert row["best_score"] == t["val_accuracy"].max()
        assert row["baseline_score"] == t.loc[t["is_baseline"], "val_accuracy"].iloc[0]
        assert row["gain"] == pytest.approx(row["best_score"] - row["baseline_score"])
        assert row["trials_finished"] == (t["status"] == "COMPLETE").sum()
        assert row["best_trial_seconds"] == t.loc[t["val_accuracy"].idxmax(), "duration_s"]
    # Test scores equal a direct evaluation of the saved model on the rebuilt test split.
    row = lyr[(lyr["family"] == "lyrics_tfidf_logreg") & (lyr["variant"] == "lyrics")].iloc[0]
    d = lyrics.load(small_lyrics, cache_dir=res / "_cache", sample_fraction=1.0, seq_len=30, vocab_size=300)
    model = load_best("lyrics_tfidf_logreg", res)
    assert row["test_accuracy"] == pytest.approx(np.mean(model.model.predict(d.test.texts) == d.test.y))
    cif = tables["comparison_cifar"].set_index("family")
    b2 = images.make_block(images.load_images("demo"), 2)
    transfer = load_best("cifar_transfer", res)
    direct = np.mean(transfer.model.predict(b2.x_test, verbose=0).argmax(1) == b2.y_test)
    assert cif.loc["cifar_transfer", "test_accuracy"] == pytest.approx(direct)
    ae = pd.read_csv(res / "cifar_autoencoder" / "trials.csv")
    assert cif.loc["cifar_autoencoder", "best_score"] == ae["val_reconstruction_mse"].min()
    assert cif.loc["cifar_autoencoder", "test_reconstruction_mse"] > 0
    for name in ("comparison_lyrics", "comparison_cifar", "comparison_cifar_activation", "comparison_cifar_loss",
                 "comparison_cifar_skip", "comparison_cifar_transfer", "mcnemar"):
        assert (res / f"{name}.csv").exists() and (res / f"{name}.md").read_text().startswith("|")


def test_transfer_table_has_its_from_scratch_reference(tables, res):
    t = tables["comparison_cifar_transfer"].set_index("model")
    assert t.loc["from scratch", "trials"] == 1 and t.loc["transferred", "source"] == "both"
    # like for like on test: trial 0 (the study's transfer) against trial 1 (the same layers, random weights)
    row = tables["comparison_cifar"].set_index("family").loc["cifar_transfer"]
    b2 = images.make_block(images.load_images("demo"), 2)
    scores = {}
    for name in ("baseline", "from_scratch"):
        model = load_best(str(res / "cifar_transfer" / name))
        assert model.meta["hyperparameters"]["source"] == ("both" if name == "baseline" else "none")
        scores[name] = model.model.predict(b2.x_test, verbose=0).argmax(1)
    assert row["transfer_test_accuracy"] == pytest.approx(np.mean(scores["baseline"] == b2.y_test))
    assert row["scratch_test_accuracy"] == pytest.approx(np.mean(scores["from_scratch"] == b2.y_test))
    assert row["transfer_vs_scratch_p"] == pytest.approx(significance.mcnemar(scores["baseline"], scores["from_scratch"],
                                                                         b2.y_test)[2])
    assert row["scratch_test_accuracy_low"] <= row["scratch_test_accuracy"] <= row["scratch_test_accuracy_high"]


def test_mcnemar_exact_test():
    y = np.zeros(20, dtype=int)
    a = np.zeros(20, dtype=int)  # always right
    b = np.r_[np.ones(8, dtype=int), np.zeros(12, dtype=int)]  # wrong on 8
    assert significance.mcnemar(a, b, y) == (8, 0, pytest.approx(2 * 0.5 ** 8))
    assert significance.mcnemar(a, a, y) == (0, 0, 1.0)


def test_mcnemar_pairs_models_on_the_same_test_rows(tables):
    m = tables["mcnemar"]
    lyr = m[m["task"] == "lyrics"].iloc[0]
    assert {lyr["model_a"], lyr["model_b"]} <= {"lyrics_tfidf_logreg (lyrics)", "lyrics_tfidf_logreg (lyrics+artist)",
                                                "lyrics_lstm (lyrics)"}
    # the CIFAR models are on different blocks: never paired, and the table says why
    cifar = m[m["task"] == "cifar"]
    assert cifar["model_a"].isna().all() and cifar["note"].str.startswith("no pair: a test needs two families").all()


def test_one_family_alone_gets_a_mcnemar_table_that_says_it_needs_two(tmp_path, small_lyrics):
    """Issue 52: results/mcnemar.csv and .md were 1-byte files when only one family had run; and a search of one
    trial got no word on the importances it lacks."""
    from lyrics_cifar_search.analysis import compare, report
    res = tmp_path / "res"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "1",
                "--quiet"]) == 0
    assert compare.main(["--results-dir", str(res)]) == 0
    table = pd.read_csv(res / "mcnemar.csv")
    assert list(table["note"]) == ["no pair: a test needs two families scored on the same test rows (1 scored "
                                   "here, on different rows or alone)"]
    assert "needs two families" in (res / "mcnemar.md").read_text()
    assert report.main(["--results-dir", str(res)]) == 0
    assert "No importances: 1 finished trials, fewer than the 10 fANOVA needs" in (res / "report.md").read_text()


def test_repeats_retrain_baseline_and_best_with_an_interval(res, tables):
    t = compare.compare(res, ["lyrics_tfidf_logreg"], 2)["repeats"].set_index("search")
    lr = t.loc["lyrics_tfidf_logreg"]
    # logistic regression (newton-cg) does not depend on the seed: said so, with no spread reported
    assert lr["metric"] == "test_accuracy" and np.isnan(lr["best_std"]) and "deterministic" in lr["note"]
    assert lr["best_scores"].split() == [lr["best_scores"].split()[0]] * 2
    saved = tables["comparison_lyrics"].query("family == 'lyrics_tfidf_logreg' and variant == 'lyrics'")
    assert lr["best_mean"] == pytest.approx(saved["test_accuracy"].iloc[0])
    assert lr["gain"] == pytest.approx(lr["best_mean"] - lr["baseline_mean"])
    if "the best configuration is the baseline" in lr["note"]:
        assert lr["gain_low"] == lr["gain_high"] == 0
    else:  # two deterministic models: no seed interval (not "+0.0056 to +0.0056"), the test sample's p instead
        assert np.isnan(lr["gain_low"]) and np.isnan(lr["gain_high"]) and "no training-seed variance" in lr["note"]
    # the autoencoder is retrained and scored on its own metric (this ended in a traceback); one seed is
    # enough for that, and has no interval
    ae = compare.repeats(res, ["cifar_autoencoder"], 1).iloc[0]
    assert ae["metric"] == "test_reconstruction_mse" and 0 < ae["best_mean"] < 1 and 0 < ae["baseline_mean"] < 1
    assert ae["gain"] == pytest.approx(ae["best_mean"] - ae["baseline_mean"]) and np.isnan(ae["gain_low"])


def test_welch_interval_of_the_gain_from_seeds(monkeypatch):
    from lyrics_cifar_search.analysis import retrain
    scores = {"best": [0.70, 0.72, 0.74], "baseline": [0.60, 0.61, 0.62]}
    monkeypatch.setattr(retrain, "retrain", lambda name, res, k, artist, which: (
        [{"test_accuracy": v} for v in scores[which]], False))
    row = compare.repeats("unused", ["lyrics_lstm"], 3).iloc[0]
    from scipy import stats
    ref = stats.ttest_ind(scores["best"], scores["baseline"], equal_var=False).confidence_interval(0.95)
    assert row["gain"] == pytest.approx(0.11) and (row["gain_low"], row["gain_high"]) == pytest.approx(ref)
    assert row["best_std"] == pytest.approx(0.02) and row["note"] == ""


def test_tables_give_the_majority_reference_and_intervals(res, tables, small_lyrics):
    from scipy.stats import binomtest
    from sklearn.metrics import f1_score
    lyr = tables["comparison_lyrics"]
    row = lyr[(lyr["family"] == "lyrics_tfidf_logreg") & (lyr["variant"] == "lyrics")].iloc[0]
    d = lyrics.load(small_lyrics, cache_dir=res / "_cache", sample_fraction=1.0, seq_len=30, vocab_size=300)
    major = int(np.bincount(d.train.y).argmax())
    assert row["majority_class"] == d.label_names[major]
    assert row["majority_val_accuracy"] == pytest.approx(np.mean(d.val.y == major))
    assert row["majority_test_accuracy"] == pytest.approx(np.mean(d.test.y == major))
    constant = np.full_like(d.test.y, major)
    assert row["majority_test_macro_f1"] == pytest.approx(
        f1_score(d.test.y, constant, average="macro", labels=list(range(len(d.label_names))), zero_division=0))
    pred = load_best("lyrics_tfidf_logreg", res).model.predict(d.test.texts)
    right, major_right = pred == d.test.y, d.test.y == major
    b, c = int(np.sum(right & ~major_right)), int(np.sum(~right & major_right))
    p = binomtest(b, b + c, 0.5, alternative="greater").pvalue
    assert row["beats_majority_p"] == pytest.approx(p) and row["beats_majority"] == (p < 0.05)
    k, n = int(np.sum(right)), len(d.test.y)
    assert row["test_accuracy_low"] < k / n < row["test_accuracy_high"]
    assert significance.wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # the textbook example
    cif = tables["comparison_cifar"].set_index("family")
    assert 0 < cif.loc["cifar_cnn", "majority_test_accuracy"] < 1 and pd.isna(cif.loc["cifar_autoencoder", "majority_class"])


def test_report_writes_markdown_html_and_real_pngs(res):
    md, html, pngs = report.build_report(res)
    text = md.read_text()
    assert "demo set, not real data" in text and "## Task: lyrics" in text and "## Task: cifar" in text
    assert "## Departures from the earlier study" in text and "TF-Hub" in text
    assert "what the search selected on" in text and "beats majority (p)" in text and "test gain (p)" in text
    # split sizes, each CIFAR block's classes, each search's ranges beside its baseline and best, p-values
    assert "Split sizes" in text and re.search(r"CIFAR block 1 \(\d+ classes", text)
    assert "Search space, the baseline and the best configuration" in text and "0.0001 to 0.01 (log)" in text
    assert re.search(r"one-sided exact McNemar, p = [0-9.e-]+", text) and re.search(r"(yes|no) \(p = ", text)
    assert "was selected on validation accuracy" in text and "95 % interval" in text  # the headline per task
    assert "## Provenance" in text and "scikit-learn" in text
    # each search says how its trials ended and who proposed them
    assert re.search(r"### lyrics_lstm\n\n\d+ trials \(\d+ complete, \d+ failed.*\), proposed by Optuna study "
                     r"\(tpe sampler, median pruner\)\.", text)
    assert re.search(r"### lyrics_tfidf_logreg\n\n4 trials \(4 complete, 0 failed\), proposed by Optuna study "
                     r"\(tpe sampler\)\.", text)
    names = {p.name for p in pngs}
    # CIFAR: a headline and a confusion matrix per block (they hold other classes), and whether transfer won
    assert "**cifar block 1: `" in text and "**cifar block 2: `cifar_transfer`" in text
    assert re.search(r"\*\*Transfer (did not win|won) on block 2", text)
    assert re.search(r"\*\*Transfer vs from scratch on block 2 \(test, like for like\)\*\*: .*\(trial 0\) scores "
                     r"[0-9.]+ \([0-9.]+-[0-9.]+\), .* \(trial 1\) [0-9.]+ \([0-9.]+-[0-9.]+\).*McNemar p = ", text)
    assert {"best_vs_baseline_lyrics.png", "best_vs_baseline_cifar.png", "confusion_lyrics.png",
            "confusion_cifar_block1.png", "confusion_cifar_block2.png", "curves_lyrics_lstm.png", "history_lyrics_tfidf_logreg.png",
            "parallel_lyrics_tfidf_logreg.png", "slice_lyrics_tfidf_logreg.png", "reconstructions.png"} <= names
    # 4 trials: too few for importances, and the report says so instead of drawing them
    assert "importance_lyrics_tfidf_logreg.png" not in names and "No importances: 4 finished trials" in text
    for p in pngs:
        assert p.stat().st_mode & 0o777 == 0o666 & ~UMASK, p  # what a plain open() makes, not mkstemp's 0600
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    page = html.read_text()
    assert "data:image/png;base64," in page and 'src="report_files' not in page and "<table>" in page


def test_demo_predictions_equal_the_models_own(res, capsys):
    text = "kashi lomi the rain falls"
    assert demo.main(["--results-dir", str(res), "--lyrics", text]) == 0
    out = capsys.readouterr().out.splitlines()
    best = load_best("lyrics_tfidf_logreg", res)  # the best lyrics-only model by validation accuracy
    assert out[0].startswith("lyrics_tfidf_logreg (lyrics")
    probs = best.predict_proba([text])[0]
    assert out[1].split()[0] == best.label_names[int(np.argmax(probs))]
    assert float(out[1].split()[1]) == pytest.approx(probs.max(), abs=1e-3)

    b2 = images.make_block(images.load_images("demo"), 2)
    path = res.parent / "img.png"
    Image.fromarray((b2.x_test[0] * 255).round().astype("uint8")).save(path)
    capsys.readouterr()  # the demo set's notice
    assert demo.main(["--results-dir", str(res), "--image", str(path), "--family", "cifar_transfer"]) == 0
    out = capsys.readouterr().out.splitlines()
    model = load_best("cifar_transfer", res)
    assert out[1].split()[0] == model.predict(np.asarray(Image.open(path)))[0]

    assert demo.main(["--results-dir", str(res)]) == 0
    table = capsys.readouterr().out
    assert "lyrics_tfidf_logreg_artist" in table and "cifar_transfer" in table


def test_no_results_names_the_search_command(tmp_path, capsys):
    assert compare.main(["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "python runners/search.py" in err and len(err.splitlines()) == 1
    assert demo.main(["--results-dir", str(tmp_path)]) == 2


def test_broken_folders_are_reported_and_the_rest_still_compared(res, tmp_path, capsys):
    broken = tmp_path / "results"
    shutil.copytree(res, broken)
    (broken / "lyrics_lstm" / "trials.csv").write_bytes(b"\x00\x01garbage")  # half-written
    (broken / "cifar_cnn" / "best" / "model.keras").unlink()  # missing model file
    (broken / "cifar_autoencoder" / "best" / "model.keras").write_bytes(b"not a zip")  # corrupted
    capsys.readouterr()
    tables = compare.compare(broken)
    err = capsys.readouterr().err
    assert "lyrics_lstm/trials.csv" in err and "model.keras is missing" in err and "not a loadable Keras model" in err
    assert "lyrics_tfidf_logreg" in set(tables["comparison_lyrics"]["family"])
    assert tables["comparison_cifar"].set_index("family").loc["cifar_transfer", "test_accuracy"] > 0
    md, html, pngs = report.build_report(broken)
    assert md.exists() and pngs


def test_test_file_with_unseen_genres(tmp_path, small_lyrics, capsys):
    test = tmp_path / "test.csv"
    df = pd.read_csv(small_lyrics).head(40).copy()
    df.loc[:9, "Genre"] = "Polka"  # a genre never seen in training
    df["Lyrics"] = "unheard " + df["Lyrics"]  # not repeats of the training songs (those would be removed)
    df.to_csv(test, index=False)
    r = tmp_path / "results"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--test-data", str(test), "--results-dir", str(r),
                "--max-trials", "1", *FAST]) == 0
    assert "dropped 10 test rows with genres unseen in training: Polka" in capsys.readouterr().err
    row = compare.compare(r)["comparison_lyrics"].iloc[0]
    assert 0 <= row["test_accuracy"] <= 1


def test_tensorboard_logs_each_trial_with_hparams(tmp_path, small_lyrics):
    tb = tmp_path / "tb"
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(tmp_path / "r"), "--max-trials", "2",
                "--epochs", "1", "--tensorboard", str(tb), *FAST]) == 0
    assert sorted(p.name for p in tb.iterdir()) == ["lyrics_lstm"]  # one folder per search
    assert sorted(p.name for p in (tb / "lyrics_lstm").iterdir()) == ["trial_0", "trial_1"]  # the trials.csv ids
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    for trial in ("trial_0", "trial_1"):
        events = EventAccumulator(str(tb / "lyrics_lstm" / trial), size_guidance={"tensors": 0}).Reload()
        content = events.PluginTagToContent("hparams")
        info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
        assert {"batch_size", "learning_rate", "lstm_units"} <= set(info.hparams)  # every one, the baseline's too
    assert info.group_name == "1"


def test_figures_of_demo_data_say_so_and_importances_need_enough_trials(tmp_path):
    import matplotlib.pyplot as plt
    import optuna
    fig, _ = plt.subplots()
    figures.mark_demo(fig, True)
    assert [t.get_text() for t in fig.texts] == [figures.DEMO_MARK]
    plt.close(fig)
    # issue 52: the mark sat on a rotated tick label of the confusion matrix; it now overlaps nothing drawn
    from sklearn.metrics import ConfusionMatrixDisplay
    fig, ax = plt.subplots(figsize=(5.5, 5))
    names = ["Hip-Hop", "Metal", "Pop", "Rock", "Electronic"]
    ConfusionMatrixDisplay.from_predictions([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], display_labels=names, ax=ax,
                                            colorbar=False, xticks_rotation=45)
    figures.mark_demo(fig, True)
    renderer = fig.canvas.get_renderer()
    mark = fig.texts[0].get_window_extent(renderer)
    drawn = [t.get_window_extent(renderer) for t in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label,
                                                     ax.yaxis.label, *ax.texts]] + [ax.get_window_extent(renderer)]
    assert not any(mark.overlaps(box) for box in drawn)
    plt.close(fig)
    study = optuna.create_study()
    for i in range(figures.MIN_TRIALS_FOR_IMPORTANCE):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 10 ** -(1 + i % 4), "units": [8, 16][i % 2]}, value=float(i % 3),
            distributions={"lr": optuna.distributions.FloatDistribution(1e-5, 1, log=True),
                           "units": optuna.distributions.CategoricalDistribution([8, 16])}))
    folder = tmp_path / "lyrics_x"
    plots, notes = figures.optuna_plots(folder, study, tmp_path, is_demo=True)
    assert [p.name for p in plots] == ["importance_lyrics_x.png", "parallel_lyrics_x.png", "slice_lyrics_x.png"]
    assert len(notes) == 1 and "fANOVA" in notes[0] and "optuna-dashboard" in notes[0]  # which evaluator, and why
    # the dashboard may rank differently


def test_the_reports_figures_name_each_trial_by_its_own_id(tmp_path, monkeypatch):
    """The report's copy of a search's study numbers its trials afresh; the figures name a trial by the id
    trials.csv and the dashboard give it (issue 42: the parallel plot said "trial 3" for trial 4 after a kill)."""
    import matplotlib.pyplot as plt
    import optuna

    from lyrics_cifar_search.runners import record
    dist = {"units": optuna.distributions.CategoricalDistribution([8, 16, 32])}
    recorded = optuna.create_study(study_name="lyrics_x", storage=record.storage_url(tmp_path), direction="maximize")
    recorded.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"interrupted": True}))
    for units, value in ((8, 0.5), (16, 0.7), (32, 0.6)):
        recorded.add_trial(optuna.trial.create_trial(params={"units": units}, distributions=dist, value=value))
    folder = tmp_path / "lyrics_x"
    study = figures.search_study(folder, None, ("val_accuracy", "max"))
    assert [record.trial_id(t) for t in study.trials] == [1, 2, 3]
    titles = []
    monkeypatch.setattr(figures, "save", lambda fig, path, is_demo=False: (
        titles.append(fig.axes[0].get_title()), plt.close(fig), path)[-1])
    figures.parallel_coordinates(folder, study, ["units"], "val_accuracy", tmp_path)
    assert titles[0].endswith("red: the best, trial 2)")
    # a search with no record: the ids come from trials.csv
    rows = pd.DataFrame({"trial_id": [3, 5], "status": ["COMPLETE"] * 2, "hp_units": [8, 16],
                         "val_accuracy": [0.5, 0.7]})
    study = figures.search_study(tmp_path / "other" / "lyrics_y", rows, ("val_accuracy", "max"))
    assert [record.trial_id(t) for t in study.trials] == [3, 5]


def test_a_wide_space_keeps_the_parallel_plot_inside_the_reports_column(tmp_path):
    """12 hyperparameters (lyrics_cnn's) came out 1,649 pixels wide, shown at 60 % in the report's 1,100-pixel
    column with its labels too small to read; in rows of PARALLEL_AXES_PER_ROW it keeps its own size."""
    import optuna
    names = [f"hp_{i:02d}" for i in range(12)]
    dist = optuna.distributions.CategoricalDistribution(["glove_finetuned", "learned"])
    study = optuna.create_study(direction="maximize")
    for k in range(3):
        study.add_trial(optuna.trial.create_trial(params={n: dist.choices[k % 2] for n in names},
                                                  distributions={n: dist for n in names}, value=0.1 * k))
    path = figures.parallel_coordinates(tmp_path / "lyrics_x", study, names, "val_accuracy", tmp_path)
    width, height = Image.open(path).size
    assert width <= 1100 and height > 3 * 250  # three rows


def test_top_trials_like_results_summary(res, capsys):
    assert compare.main(["--results-dir", str(res), "--top", "2", "--families", "lyrics_tfidf_logreg"]) == 0
    out = capsys.readouterr().out
    trials = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    best_two = trials.sort_values("val_accuracy", ascending=False, kind="stable").head(2)
    assert "lyrics_tfidf_logreg: the 2 best of 4 trials" in out and "lyrics_lstm" not in out
    rows = [line.split() for line in out.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == list(best_two["trial_id"])
    assert compare.main(["--results-dir", str(res), "--top", "2", "--families", "lyrics_nope"]) == 2


def test_keras_and_sklearn_searches_are_studies_of_one_storage(res):
    """optuna-dashboard sqlite:///results/optuna.db shows every search, Keras Tuner's included, with the
    trial ids and scores of trials.csv, the real distributions, metric names and the study's attributes."""
    import optuna

    from lyrics_cifar_search.runners import record
    storage = f"sqlite:///{res / 'optuna.db'}"
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert {"lyrics_lstm", "lyrics_tfidf_logreg", "lyrics_tfidf_logreg_artist"} <= names
    for name in ("lyrics_lstm", "lyrics_tfidf_logreg"):
        study = optuna.load_study(study_name=name, storage=storage)
        table = pd.read_csv(res / name / "trials.csv")
        assert study.metric_names == ["val_accuracy"]
        assert study.user_attrs["family"] == name and study.user_attrs["seed"] == 42
        assert study.user_attrs["data_fingerprint"] == table["data_fingerprint"][0]
        trials = study.get_trials()
        assert [record.trial_id(t) for t in trials] == list(table["trial_id"])
        assert [t.value for t in trials] == list(table["val_accuracy"])
        assert trials[0].user_attrs["is_baseline"] is True
    lstm = optuna.load_study(study_name="lyrics_lstm", storage=storage).trials[0]
    lr = lstm.distributions["learning_rate"]
    assert isinstance(lr, optuna.distributions.FloatDistribution) and lr.log  # Keras Tuner's log sampling kept
    assert isinstance(lstm.distributions["lstm_units"], optuna.distributions.CategoricalDistribution)
    tfidf = optuna.load_study(study_name="lyrics_tfidf_logreg", storage=storage).trials[0]
    assert isinstance(tfidf.distributions["C"], optuna.distributions.FloatDistribution) and tfidf.distributions["C"].log
    assert isinstance(tfidf.distributions["ngram_max"], optuna.distributions.IntDistribution)


def test_the_earlier_studys_numbers_sit_beside_the_same_model_and_the_best_apart(tmp_path, small_lyrics):
    """Issue 51: the study's number was put beside the best of every trial sharing a setting (the "base CNN" row
    showed a skip + label-smoothing trial's 0.381, the base CNN itself scored 0.254). Each row now shows the same
    model: the baseline, or the fixed trial that differs from it in the row's setting alone; the best apart."""
    from lyrics_cifar_search.analysis import report, report_study
    res = tmp_path / "res"
    one_factor = tmp_path / "enqueue.jsonl"
    defaults = {"max_features": 5000, "ngram_max": 1, "sublinear_tf": False, "min_df": 1, "C": 1.0,
                "class_weight": "none"}
    one_factor.write_text(json.dumps({**defaults, "C": 10.0}) + "\n" + json.dumps({**defaults, "C": 10.0,
                                                                                     "min_df": 3}) + "\n")
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "5",
                "--enqueue", str(one_factor), "--quiet"]) == 0
    trials = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    done = trials[trials["status"] == "COMPLETE"]
    assert int(report_study.same_model(done)["trial_id"]) == 0
    assert int(report_study.same_model(done, "C=10.0")["trial_id"]) == 1  # trial 2 differs in min_df too: not it
    assert report_study.same_model(done, "C=0.5") is None and report_study.same_model(done, "no_such=1") is None
    assert report.main(["--results-dir", str(res)]) == 0
    row = next([c.strip() for c in line.split("|")] for line in (res / "report.md").read_text().splitlines()
               if line.startswith("| TF-IDF + logistic regression") and "| lyrics " in line)
    base, best = done.iloc[0], done.loc[done["val_accuracy"].idxmax()]
    assert f"{base['val_accuracy']:.4g} (trial 0)" in row
    assert f"{best['val_accuracy']:.4g} (trial {best['trial_id']}, of {len(done)})" in row
