"""Several objectives (issue 50): `--objective val_accuracy,params` runs an Optuna multi-objective study; the
Pareto front is marked in trials.csv and printed; best/ is the front's best first objective; no pruning; what a
Pareto search cannot be is refused in one line; a resume refuses changed objectives."""

import json

import optuna
import pandas as pd
import pytest

from lyrics_cifar_search import search
from lyrics_cifar_search.runners.search import cli

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _front(done, objectives):
    """The non-dominated rows of `done`, by brute force: what trials.csv's pareto column must say."""
    def dominates(a, b):
        at_least = all((a[n] >= b[n]) if d == "max" else (a[n] <= b[n]) for n, d in objectives)
        better = any((a[n] > b[n]) if d == "max" else (a[n] < b[n]) for n, d in objectives)
        return at_least and better
    rows = [r for _, r in done.iterrows()]
    return {int(r["trial_id"]) for r in rows if not any(dominates(o, r) for o in rows)}


def test_a_pareto_search_of_accuracy_and_size_marks_and_prints_its_front(tmp_path, small_lyrics, capsys):
    res = tmp_path / "res"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "8",
                "--objective", "val_accuracy,params"]) == 0
    out = capsys.readouterr().out
    folder = res / "lyrics_tfidf_logreg"
    study = optuna.load_study(study_name="lyrics_tfidf_logreg", storage=f"sqlite:///{res / 'optuna.db'}")
    assert len(study.directions) == 2 and study.metric_names == ["val_accuracy", "params"]
    trials = pd.read_csv(folder / "trials.csv")
    done = trials[trials["status"] == "COMPLETE"]
    assert len(done) == 8 and done["params"].notna().all()
    objectives = [("val_accuracy", "max"), ("params", "min")]
    front = _front(done, objectives)
    assert set(done.loc[done["pareto"], "trial_id"]) == front  # the column, checked by brute force
    assert {t.number for t in study.best_trials} == front  # and Optuna's own front agrees
    # the summary lists every trial of the front with its objectives
    listed = [line for line in out.splitlines() if line.strip().startswith("trial ") and "params" in line]
    assert {int(line.split()[1].rstrip(":")) for line in listed} == front
    assert "Pareto-optimal" in out
    # best/ holds the front's best accuracy (ties broken by size): on the front, and as the summary says
    best = json.loads((folder / "best" / "meta.json").read_text())
    top = done[done["val_accuracy"] == done["val_accuracy"].max()]
    assert best["trial_id"] in front
    assert best["metrics"]["params"] == top["params"].min()
    assert f"best      trial {best['trial_id']}:" in out
    # the report draws the front (Optuna's plot_pareto_front) and its table takes best/'s trial, saying why
    from lyrics_cifar_search.analysis import report
    assert report.main(["--results-dir", str(res)]) == 0
    assert (res / "report_files" / "pareto_lyrics_tfidf_logreg.png").stat().st_size > 10_000
    assert "A Pareto search of val_accuracy, params" in (res / "report.md").read_text()
    row = pd.read_csv(res / "comparison_lyrics.csv").iloc[0]
    assert row["best_trial"] == best["trial_id"] and row["pareto_objectives"].startswith("val_accuracy,params: best")


def test_a_keras_pareto_search_does_not_prune_and_says_so_once(tmp_path, small_lyrics, capsys):
    res = tmp_path / "res"
    assert cli(["lyrics_embedding", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                "--epochs", "2", "--objective", "val_accuracy,params,predict_ms,train_s"]) == 0
    said = capsys.readouterr()
    assert (said.out + said.err).count("so no pruning") == 1
    study = optuna.load_study(study_name="lyrics_embedding", storage=f"sqlite:///{res / 'optuna.db'}")
    assert len(study.directions) == 4
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 3
    assert all(not t.intermediate_values for t in done)  # nothing reported for a pruner to act on
    assert json.loads((res / "lyrics_embedding" / "search.json").read_text())["pruner"] == "none"
    trials = pd.read_csv(res / "lyrics_embedding" / "trials.csv")
    assert (trials["predict_ms"] > 0).all() and (trials["train_s"] > 0).all() and (trials["params"] > 1000).all()
    for t in done:  # the values told are the row's
        row = trials[trials["trial_id"] == t.number].iloc[0]
        assert t.values == pytest.approx([row["val_accuracy"], row["params"], row["predict_ms"], row["train_s"]])


@pytest.mark.parametrize("flags, says", [
    (["lyrics_embedding", "--tuner", "random"], "Keras Tuner's own random optimises one objective"),
    (["lyrics_embedding", "--pruner", "median"], "Optuna cannot prune a search of several objectives"),
    (["lyrics_tfidf_logreg", "--sampler", "tpe-prior"], "several objectives takes --sampler tpe"),
])
def test_what_a_pareto_search_cannot_be_is_refused_in_one_line(tmp_path, small_lyrics, capsys, flags, says):
    assert cli([*flags, "--objective", "val_accuracy,params", "--data", str(small_lyrics),
                "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("objective, says", [
    ("params", "name a score first"), ("val_accuracy,size", "unknown objective 'size'"),
    ("val_accuracy,params,params", "names an objective twice"), ("val_f1", "a classifier family ranks by"),
])
def test_bad_objectives_get_one_line(tmp_path, small_lyrics, capsys, objective, says):
    assert cli(["lyrics_tfidf_logreg", "--objective", objective, "--data", str(small_lyrics),
                "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1


def test_a_resume_refuses_changed_objectives_and_continues_the_same(tmp_path, small_lyrics, capsys):
    base = ["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(tmp_path)]
    assert cli([*base, "--max-trials", "3", "--objective", "val_accuracy,params"]) == 0
    before = (tmp_path / "lyrics_tfidf_logreg" / "trials.csv").read_bytes()
    for other in (["--objective", "val_accuracy,predict_ms"], []):
        capsys.readouterr()
        assert cli([*base, "--max-trials", "4", *other]) == 2
        assert "--objective (several): was val_accuracy,params" in capsys.readouterr().err
        assert (tmp_path / "lyrics_tfidf_logreg" / "trials.csv").read_bytes() == before
    assert cli([*base, "--max-trials", "4", "--objective", "val_accuracy,params"]) == 0
    assert len(pd.read_csv(tmp_path / "lyrics_tfidf_logreg" / "trials.csv")) == 4


def test_nsga2_and_the_python_api_take_the_same_objectives(tmp_path, small_lyrics):
    result = search("lyrics_tfidf_logreg", data=small_lyrics, results_dir=tmp_path, max_trials=6,
                    objective=["val_accuracy", "params"], sampler="nsga2", keep_models=2)
    assert result.objectives == (("val_accuracy", "max"), ("params", "min"))
    front = set(result.best_trials["trial_id"])
    assert front == _front(result.trials[result.trials["status"] == "COMPLETE"], list(result.objectives))
    assert int(result.best_trial["trial_id"]) in front
    study = optuna.load_study(study_name="lyrics_tfidf_logreg", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.user_attrs["policy"]["population_size"] >= 4 and study.user_attrs["sampler"] == "nsga2"
    # Keras Tuner's get_best_models(num_models=k): here, the kept front's best first
    models = result.best_models(2)
    assert models[0].meta["trial_id"] == int(result.best_trial["trial_id"])
    assert [m.meta["trial_id"] for m in models][1] != models[0].meta["trial_id"]


def test_best_is_the_first_objective_then_the_next_so_it_stays_on_the_front(tmp_path):
    """best/ is replaced by a trial as accurate and smaller (a tie in the first objective goes to the next), never
    by one as accurate and larger; a better first objective wins whatever its size."""
    from lyrics_cifar_search.runners import best_store
    objectives = [("val_accuracy", "max"), ("params", "min")]

    def save(trial, metrics):
        staged = best_store.stage_best(tmp_path, trial, lambda d: (d / "model.skops").write_text("m"),
                                       {"trial_id": trial, "metrics": metrics}, {})
        best_store.promote(tmp_path, staged, objectives)
        return json.loads((tmp_path / "best" / "meta.json").read_text())["trial_id"]

    assert save(0, {"val_accuracy": 0.8, "params": 100}) == 0
    assert save(1, {"val_accuracy": 0.8, "params": 200}) == 0  # as accurate, larger
    assert save(2, {"val_accuracy": 0.8, "params": 50}) == 2  # as accurate, smaller: on the front, trial 0 not
    assert save(3, {"val_accuracy": 0.79, "params": 1}) == 2
    assert save(4, {"val_accuracy": 0.81, "params": 500}) == 4
    assert best_store.is_better({"val_accuracy": 0.81, "params": 400}, tmp_path, ("val_accuracy", "max")) is False


def test_describe_and_the_studys_dry_run_know_several_objectives_and_kept_models(tmp_path, capsys):
    assert cli(["lyrics_tfidf_logreg", "--describe"]) == 0
    out = capsys.readouterr().out
    assert "Objective: val_accuracy (max); add costs (params, predict_ms, train_s)" in out and "--keep-models K" in out
    plan = tmp_path / "plan.toml"
    plan.write_text('[[search]]\nfamily = "lyrics_tfidf_logreg"\nobjective = "val_accuracy,params"\n'
                    'keep_models = 3\nmax_trials = 4\n')
    from lyrics_cifar_search.runners import study
    assert study.main([str(plan), "--dry-run", "--results-dir", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "Pareto search of val_accuracy,params (no pruning); keeps 3 best models" in out
