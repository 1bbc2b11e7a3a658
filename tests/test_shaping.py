"""Shaping a family's space (issue 49): --set fixes a hyperparameter for every trial (the baseline's too),
--range and --choices narrow one, --enqueue queues configurations after the baseline; each checked against the
family's space before anything runs, recorded (a resume with other shaping is refused), shown by --describe,
the summary, the study's dry run, and taken by the Python API; real searches on both engines."""

import json

import pandas as pd
import pytest

from lyrics_cifar_search import search
from lyrics_cifar_search.runners import shaping
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.runners.study import main as study_main

RNN = ["--seq-len", "20", "--vocab-size", "200", "--epochs", "1"]


def _run(tmp_path, family, data, *flags):
    res = tmp_path / "r"
    code = cli([family, "--data", str(data), "--results-dir", str(res), *flags])
    return code, res / family


def _hp(rows, name):
    return rows[f"hp_{name}"].tolist()


# --- on real searches --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_set_range_and_choices_shape_an_optuna_search_the_baseline_included(tmp_path, small_lyrics, capsys):
    code, folder = _run(tmp_path, "lyrics_tfidf_logreg", small_lyrics, "--max-trials", "6", "--set", "sublinear_tf=true",
                        "--range", "C=0.5:4", "--choices", "max_features=2000,5000")
    assert code == 0
    rows = pd.read_csv(folder / "trials.csv")
    assert len(rows) == 6 and rows["is_baseline"].tolist()[0]
    assert _hp(rows, "sublinear_tf") == [True] * 6  # the baseline's too
    assert rows.iloc[0]["hp_C"] == 1.0 and rows.iloc[0]["hp_max_features"] == 5000  # otherwise the defaults
    assert all(0.5 <= c <= 4 for c in _hp(rows, "C")) and set(_hp(rows, "max_features")) <= {2000, 5000}
    out = capsys.readouterr().out
    assert "shaped    sublinear_tf fixed at True (--set); C in 0.5 .. 4 (--range); max_features in 2000, 5000" in out
    # a resume with other shaping is another search
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(folder.parent),
                "--max-trials", "7", "--set", "sublinear_tf=true"]) == 2
    assert "the space's shaping (--set, --range, --choices, --enqueue)" in capsys.readouterr().err
    assert len(pd.read_csv(folder / "trials.csv")) == 6


@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["optuna", "random"])
def test_set_range_and_choices_shape_a_keras_search_whichever_oracle(tmp_path, small_lyrics, tuner):
    code, folder = _run(tmp_path, "lyrics_rnn", small_lyrics, *RNN, "--max-trials", "4", "--tuner", tuner,
                        "--set", "bidirectional=true", "--range", "dropout=0.1:0.3",
                        "--choices", "rnn_units=10,32", "--set", "batch_size=128")
    assert code == 0
    rows = pd.read_csv(folder / "trials.csv")
    assert len(rows) == 4 and rows.iloc[0]["is_baseline"]
    assert _hp(rows, "bidirectional") == [True] * 4 and _hp(rows, "batch_size") == [128] * 4  # fit()'s too
    assert all(0.1 - 1e-9 <= d <= 0.3 + 1e-9 for d in _hp(rows, "dropout"))
    assert set(_hp(rows, "rnn_units")) <= {10, 32} and rows.iloc[0]["hp_rnn_units"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_enqueued_configurations_run_after_the_baseline(tmp_path, small_lyrics, suffix):
    queue = tmp_path / f"queue{suffix}"
    if suffix == ".jsonl":
        queue.write_text(json.dumps({"C": 0.25, "ngram_max": 2}) + "\n" + json.dumps({"C": 8.0}) + "\n")
    else:
        queue.write_text("C,ngram_max\n0.25,2\n8.0,\n")
    code, folder = _run(tmp_path, "lyrics_tfidf_logreg", small_lyrics, "--max-trials", "4", "--enqueue", str(queue))
    assert code == 0
    rows = pd.read_csv(folder / "trials.csv")
    assert rows["is_baseline"].tolist() == [True, False, False, False]
    assert (rows.iloc[1]["hp_C"], rows.iloc[1]["hp_ngram_max"]) == (0.25, 2)
    assert rows.iloc[2]["hp_C"] == 8.0  # ngram_max: the sampler's (a partial configuration)


@pytest.mark.slow
def test_a_keras_search_runs_its_queue_after_the_baseline(tmp_path, small_lyrics):
    queue = tmp_path / "q.jsonl"
    queue.write_text(json.dumps({"rnn_units": 64, "dropout": 0.5}) + "\n")
    code, folder = _run(tmp_path, "lyrics_rnn", small_lyrics, *RNN, "--max-trials", "3", "--enqueue", str(queue))
    assert code == 0
    rows = pd.read_csv(folder / "trials.csv")
    assert rows.iloc[0]["is_baseline"] and rows.iloc[1]["hp_rnn_units"] == 64 and rows.iloc[1]["hp_dropout"] == 0.5


@pytest.mark.slow
def test_the_python_api_takes_the_same_shaping(tmp_path, small_lyrics):
    result = search("lyrics_tfidf_logreg", data=small_lyrics, max_trials=3, results_dir=tmp_path,
                    set={"sublinear_tf": True}, range={"C": (0.5, 2)}, enqueue=[{"C": 2.0}])
    assert _hp(result.trials, "sublinear_tf") == [True] * 3 and result.trials.iloc[1]["hp_C"] == 2.0


# --- checked before anything runs --------------------------------------------------------------------------------

@pytest.mark.parametrize("flags,said", [
    (["--set", "rnn_unit=32"], "no hyperparameter 'rnn_unit'; did you mean rnn_units"),
    (["--set", "rnn_units=33"], "--set rnn_units=33: outside its space (10, 32, 64, 128)"),
    (["--range", "rnn_units=10:64"], "rnn_units is a choice (10, 32, 64, 128), not a number: use --choices"),
    (["--choices", "dropout=0.1,0.2"], "dropout is a number (0.0 .. 0.6): use --range"),
    (["--range", "dropout=0.1:0.9"], "reaches outside its space (0.0 .. 0.6)"),
    (["--range", "dropout=0.3:0.5"], "leaves out its default (0.2), which trial 0 runs"),
    (["--choices", "rnn_units=32,64"], "leaves out its default (10), which trial 0 runs"),
    (["--set", "dropout=0.3", "--range", "dropout=0.1:0.4"], "dropout is shaped twice (--set and --range)"),
    (["--set", "embedding_source=glove_frozen", "--choices", "embedding_dim=100,200"],
     "--choices embedding_dim: it is active only when embedding_source is learned, and --set fixes "
     "embedding_source=glove_frozen"),
    (["--range", "dropout=0.3"], "write NAME=LOW:HIGH with two numbers"),
    (["--set", "dropout"], "--set 'dropout': write NAME=VALUE"),
])
def test_bad_shaping_is_one_line_before_anything_is_written(tmp_path, small_lyrics, capsys, flags, said):
    code, folder = _run(tmp_path, "lyrics_rnn", small_lyrics, *RNN, *flags)
    err = capsys.readouterr().err
    assert code == 2 and said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_a_range_may_leave_out_the_default_without_a_baseline(tmp_path, small_lyrics):
    from lyrics_cifar_search.search_spaces import get_family
    family = get_family("lyrics_rnn")
    space = shaping.family_space(family)
    shaping.check(shaping.Shape(ranges={"dropout": (0.3, 0.5)}), family, space, baseline=False)  # no error
    assert space["embedding_dim"].conditions == (("embedding_source", ("learned",)),)
    assert space["batch_size"].kind == "choice"  # declared in fit()


@pytest.mark.parametrize("text,said", [("{not json}\n", "line 1: not a JSON object"),
                                       ("[1, 2]\n", "line 1: not a JSON object"),
                                       ("\n", "no configuration in it"),
                                       ('{"rnn_units": 5}\n', "(configuration 1): rnn_units=5 is outside its space")])
def test_a_bad_queue_file_is_one_line(tmp_path, small_lyrics, capsys, text, said):
    queue = tmp_path / "q.jsonl"
    queue.write_text(text)
    code, _ = _run(tmp_path, "lyrics_rnn", small_lyrics, *RNN, "--enqueue", str(queue))
    assert code == 2 and said in capsys.readouterr().err
    code, _ = _run(tmp_path, "lyrics_rnn", small_lyrics, *RNN, "--enqueue", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read it" in capsys.readouterr().err


def test_describe_shows_the_shaped_space(capsys):
    assert cli(["lyrics_tfidf_logreg", "--describe", "--set", "sublinear_tf=true", "--range", "C=0.5:4"]) == 0
    out = capsys.readouterr().out
    assert "Shaped: sublinear_tf fixed at True (--set); C in 0.5 .. 4 (--range)." in out
    assert "0.5 .. 4 (--range; was 0.001 .. 100.0 (log))" in out and "True (--set; was False, True)" in out


def test_the_study_plan_takes_the_same_keys_and_its_dry_run_lists_them(tmp_path, capsys):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[search]]\nfamily = "lyrics_tfidf_logreg"\nmax_trials = 2\nset = {sublinear_tf = true}\n'
                    'range = {C = [0.5, 4]}\n')
    assert study_main([str(plan), "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    assert "shaped: sublinear_tf fixed at True (--set); C in 0.5 .. 4 (--range)" in capsys.readouterr().out
    from lyrics_cifar_search.runners.study import load_plan, search_argv
    assert search_argv(load_plan(plan)[0])[-4:] == ["--set", "sublinear_tf=True", "--range", "C=0.5:4"]
