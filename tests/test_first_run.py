"""What a new user meets: the package's contents and ranges, --describe, the end of a search, the study's dry run."""

import configparser
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from packaging.requirements import Requirement

from lyrics_cifar_search import studies
from lyrics_cifar_search.suite_common import significance
from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners import compat
from lyrics_cifar_search.runners import study as study_cli
from lyrics_cifar_search.runners.search import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sample-fraction", "1", "--seq-len", "40", "--vocab-size", "500"]


def setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_the_wheel_holds_every_package_and_the_study_files():
    cfg = setup_cfg()
    packages = cfg["options"]["packages"].split()
    package_dir = dict(line.split(" = ") for line in cfg["options"]["package_dir"].strip().splitlines())

    def folder(package):  # setup.cfg's package_dir, as setuptools reads it: the longest mapped prefix
        parts = package.split(".")
        mapped = max((i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in package_dir), default=0)
        return "/".join([package_dir[".".join(parts[:mapped])], *parts[mapped:]])

    # one import name: every package the wheel ships is under it
    assert {p.split(".")[0] for p in packages} == {"lyrics_cifar_search"}
    # every folder of Python code the suite imports is a package the wheel ships (runners.keras_search was not)
    code_folders = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("*/**/*.py")
                    if p.parts[len(ROOT.parts)] not in ("tests", "bench", "build", ".git")}
    assert code_folders <= {folder(p) for p in packages}, code_folders - {folder(p) for p in packages}
    for name in ("earlier_study.toml", "earlier_study_results.csv", "departures.md"):
        assert studies.path(name).is_file()
    data = cfg["options.package_data"]["lyrics_cifar_search.studies"]
    assert folder("lyrics_cifar_search.studies") == "studies" and "*.toml" in data and "*.csv" in data


def test_declared_versions_are_the_ranges_compat_checks():
    cfg = setup_cfg()
    lines = cfg["options"]["install_requires"] + cfg["options.extras_require"]["tensorflow"]
    requirements = {r.name: r for r in (Requirement(line) for line in lines.splitlines()
                                        if line.strip() and not line.strip().startswith("#"))}
    for name in set(compat.KNOWN) - {"torch"}:  # torch: an optional backend, not a declared requirement
        low, high, _ = compat.KNOWN[name]
        assert str(requirements[name].specifier) in (f">={low},<{high}", f"<{high},>={low}"), (name, requirements[name])
    assert "optuna-integration" not in requirements  # nothing imports it
    assert "optuna-dashboard" in cfg["options.extras_require"]["dashboard"]


def test_readme_departures_are_the_shipped_table():
    readme = (ROOT / "README.md").read_text()
    shipped = studies.path("departures.md").read_text().strip()
    assert shipped in readme


def test_every_departure_names_the_test_that_checks_it():
    """Issue 51: the departures table is complete, and each row names the test that checks it (a test that
    exists: its file and function)."""
    import re
    rows = [line for line in studies.path("departures.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| what | the earlier study", "| --- "))]
    assert len(rows) >= 24
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5, row
        named = re.findall(r"`tests/(\w+\.py)::(\w+)`", cells[4])
        assert named, row
        for file, test in named:
            assert f"def {test}(" in (ROOT / "tests" / file).read_text(), (file, test)
    for what in ("small genres", "what the GloVe model reads", "lyrics splits"):  # the audit's missing ones
        assert any(row.startswith(f"| {what} |") for row in rows), what


def test_describe_prints_every_hyperparameter_with_the_study_default(capsys):
    assert cli(["lyrics_lstm", "--describe"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.split("\n\n")[1].splitlines()[1:] if line.strip()}
    assert set(rows) == {"embedding_source", "embedding_dim", "lstm_units", "lstm_output", "dropout",
                         "learning_rate", "batch_size"}
    # the defaults are the earlier study's (Embedding 100, LSTM 10, flatten, dropout 0.2, Adam 1e-3, batch 1000)
    assert rows["embedding_dim"][-4:] == ["100", "embedding_source", "=", "learned"]  # conditional, and says on what
    assert rows["lstm_units"][-1] == "10" and rows["batch_size"][-1] == "1000" and rows["dropout"][-1] == "0.2"
    assert "(log)" in out and re.search(r"learning_rate\s+float\s+0\.0001 \.\. 0\.01 \(log\)\s+0\.001", out)

    assert cli(["lyrics_tfidf_logreg", "--describe"]) == 0
    out = capsys.readouterr().out
    from lyrics_cifar_search.search_spaces import get_family
    defaults = get_family("lyrics_tfidf_logreg").defaults
    rows = {line.split()[0]: line.split() for line in out.split("\n\n")[1].splitlines()[1:] if line.strip()}
    assert set(rows) == set(defaults)
    assert all(rows[k][-1] == str(v) for k, v in defaults.items())


def test_a_search_ends_with_best_baseline_test_score_and_next_commands(tmp_path, small_lyrics, capsys):
    res = tmp_path / "results"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                *FAST]) == 0
    out = capsys.readouterr().out
    trials = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    best = trials.loc[trials["val_accuracy"].idxmax()]
    assert re.search(rf"best\s+trial {best['trial_id']}: val_accuracy {best['val_accuracy']:.4f}", out)
    assert re.search(rf"baseline\s+trial 0 \(the earlier study's model\): val_accuracy "
                     rf"{trials['val_accuracy'][0]:.4f}", out)
    # the test line: the saved best model's own test accuracy, its Wilson interval, the majority reference
    model = load_best("lyrics_tfidf_logreg", res)
    scores, y, pred = model.score_test(res)
    low, high = significance.wilson(int(np.sum(pred == y)), len(y))
    assert f"accuracy {scores['test_accuracy']:.4f} (95 % interval {low:.4f}-{high:.4f}, {len(y)} rows)" in out
    ref = significance.majority_reference(model.meta, y, pred)
    assert f"always answering {ref['majority_class']!r} scores {ref['majority_test_accuracy']:.4f}" in out
    # the command the user has: in a clone the script (the wheel's console script: .ci/wheel_check)
    assert f"python analysis/report.py --results-dir {res}" in out and "optuna-dashboard sqlite:///" in out


@pytest.mark.slow
def test_keras_epochs_show_only_with_verbose(tmp_path, small_lyrics, capsys):
    args = ["lyrics_lstm", "--data", str(small_lyrics), "--max-trials", "1", "--epochs", "2", *FAST]
    assert cli([*args, "--results-dir", str(tmp_path / "quiet")]) == 0
    quiet = capsys.readouterr().out
    assert "epoch 1/2" not in quiet and "[lyrics_lstm] trial 0" in quiet
    assert cli([*args, "--results-dir", str(tmp_path / "loud"), "--verbose"]) == 0
    loud = capsys.readouterr().out
    assert loud.count("epoch 1/2") == 1 and loud.count("epoch 2/2") == 1
    # a resume does not leak Keras Tuner's own "Reloading Tuner from ..." line
    assert cli([*args, "--results-dir", str(tmp_path / "quiet"), "--max-trials", "2"]) == 0
    assert "Reloading Tuner" not in capsys.readouterr().out


def write_plan(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[lyrics]\ntime_budget = "10m"\n[[search]]\nfamily = "lyrics_lstm"\n'
                    '[[search]]\nfamily = "lyrics_lstm"\nwith_artist = true\n'
                    '[[search]]\nfamily = "lyrics_tfidf_logreg"\ntime_budget = "90s"\nmax_trials = 3\n')
    return plan


def test_study_dry_run_names_data_budgets_and_what_cannot_run(tmp_path, capsys):
    no_artist = tmp_path / "songs.tsv"
    no_artist.write_text("text\tgenre\n" + "".join(f"la la {i}\tRock\n" for i in range(20)))
    plan = write_plan(tmp_path)
    assert study_cli.main([str(plan), "--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "generated demo lyrics" in out and "sum of the time budgets: 0:21:30" in out
    assert re.search(r"lyrics_lstm\s+generated demo lyrics\s+20\s+10\s+10m\s+not started", out)
    assert "warning" not in out
    assert study_cli.main([str(plan), "--dry-run", "--lyrics-data", str(no_artist),
                           "--results-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"warning: lyrics_lstm_artist cannot run: {no_artist} has no artist column" in out
    assert re.search(r"lyrics_tfidf_logreg\s+" + re.escape(str(no_artist)) + r"\s+-\s+3\s+90s", out)


def test_the_dry_run_runs_each_searchs_resume_check_and_fresh_names_what_starts_again(tmp_path, capsys,
                                                                                         small_lyrics):
    """Issue 52, item 1: a search on record made with other options was listed as "trials on record", to run;
    the run then stopped at it. The dry run now runs its resume check, and --fresh [NAME] discards it."""
    res = tmp_path / "r"
    plan = tmp_path / "plan.toml"
    plan.write_text('[defaults]\nmax_trials = 1\nseq_len = 40\n[[search]]\nfamily = "lyrics_tfidf_logreg"\n'
                    '[[search]]\nfamily = "lyrics_decision_tree"\n')
    data = ["--lyrics-data", str(small_lyrics), "--results-dir", str(res)]
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "1",
                "--seq-len", "40", "--vocab-size", "300"]) == 0  # on record, with another vocabulary
    capsys.readouterr()
    assert study_cli.main([str(plan), "--dry-run", *data]) == 0
    out = capsys.readouterr().out
    assert re.search(r"lyrics_tfidf_logreg\s.*cannot run \(1 trials on record\)", out)
    assert "cannot run: lyrics_tfidf_logreg: " in out and "--vocab-size: was 300, now 20000" in out
    assert re.search(r"lyrics_decision_tree\s.*not started", out) and "1 to run" in out
    assert "--fresh lyrics_tfidf_logreg" in out and "NOTE" not in out  # the checks say nothing of their own
    assert study_cli.main([str(plan), "--dry-run", "--fresh", "lyrics_tfidf*", *data]) == 0
    out = capsys.readouterr().out
    assert "starts again (--fresh discards 1 trials)" in out and "cannot run" not in out and "2 to run" in out
    assert study_cli.main([str(plan), "--dry-run", "--fresh", *data]) == 0  # every search
    assert "cannot run" not in capsys.readouterr().out
    assert study_cli.main([str(plan), "--dry-run", *data, "--fresh", str(plan)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "names no search of the plan (the plan goes before --fresh)" in err[0]


@pytest.mark.slow
def test_the_study_with_fresh_runs_again_a_search_on_record_and_another_flag_undoes_done(tmp_path, capsys,
                                                                                        small_lyrics):
    res = tmp_path / "r"
    plan = tmp_path / "plan.toml"
    plan.write_text('[defaults]\nmax_trials = 1\nseq_len = 40\n[[search]]\nfamily = "lyrics_tfidf_logreg"\n')
    data = ["--lyrics-data", str(small_lyrics), "--results-dir", str(res)]
    assert study_cli.main([str(plan), *data]) == 0
    first = (res / "lyrics_tfidf_logreg" / "trials.csv").read_text()
    plan.write_text(plan.read_text().replace("seq_len = 40", "seq_len = 40\nvocab_size = 300"))
    capsys.readouterr()
    # done with other flags is not done: the dry run runs its resume check, which refuses it
    assert study_cli.main([str(plan), "--dry-run", *data]) == 0
    assert "--vocab-size: was 20000, now 300" in capsys.readouterr().out
    assert study_cli.main([str(plan), *data]) == 2
    assert "add --fresh lyrics_tfidf_logreg" in capsys.readouterr().err
    assert (res / "lyrics_tfidf_logreg" / "trials.csv").read_text() == first  # refused: untouched
    assert study_cli.main([str(plan), *data, "--fresh", "lyrics_tfidf_logreg"]) == 0
    record = json.loads((res / "lyrics_tfidf_logreg" / "search.json").read_text())
    assert record["vocab_size"] == 300 and len(record["runs"]) == 1
    assert study_cli.main([str(plan), *data]) == 0  # done with these flags now
    assert "already done; skipped" in capsys.readouterr().out
    assert study_cli.main([str(plan), *data, "--fresh"]) == 0  # done, yet run again
    out = capsys.readouterr().out
    assert "already done" not in out and "[study] search 1 of 1: lyrics_tfidf_logreg" in out


@pytest.mark.slow
def test_study_skips_up_front_what_its_data_cannot_serve(tmp_path, capsys, real_lyrics):
    plan = tmp_path / "plan.toml"
    plan.write_text('[defaults]\nmax_trials = 1\n[[search]]\nfamily = "lyrics_tfidf_logreg"\nwith_artist = true\n'
                    '[[search]]\nfamily = "lyrics_tfidf_logreg"\n')
    res = tmp_path / "r"
    assert study_cli.main([str(plan), "--lyrics-data", str(real_lyrics), "--results-dir", str(res)]) == 0
    out = capsys.readouterr().out
    assert out.index("cannot run") < out.index("search 2 of 2: lyrics_tfidf_logreg")  # said before anything ran
    assert not (res / "lyrics_tfidf_logreg_artist").exists() and (res / "lyrics_tfidf_logreg" / "trials.csv").exists()
    assert "skipped (their data cannot serve them): lyrics_tfidf_logreg_artist" in out


def test_every_flag_is_documented():
    import argparse

    from lyrics_cifar_search.runners.search import build_parser as search_parser
    from lyrics_cifar_search.runners.study import build_parser as study_parser
    reference = (ROOT / "docs" / "reference.md").read_text()
    for parser in (search_parser(), study_parser()):
        flags = [o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings
                 if o.startswith("--") and o != "--help"]
        missing = [f for f in flags if f"`{f}" not in reference]
        assert not missing, f"{parser.prog}: undocumented in docs/reference.md: {missing}"
    # nothing in the user docs points outside the repository
    for doc in (ROOT / "README.md", ROOT / "docs" / "reference.md"):
        assert "../shared" not in doc.read_text() and "/tmp/" not in doc.read_text(), doc


def test_every_reference_number_has_its_source_and_split():
    """Issue 41: each of the study's numbers says where it comes from and which split it was measured on; one
    that no kept notebook output shows says so; the NNLM's 0.571 is the demo's test score."""
    import csv
    import re
    with open(studies.path("earlier_study_results.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        assert r["split"] in ("validation", "test", "unknown") and r["source"], r
        assert (r["split"] == "unknown") == r["source"].startswith("not traceable"), r
        cited = re.search(r"(\w+\.py), cell (\d+)", r["source"])
        if r["split"] == "unknown" and cited and (ROOT.parent / "shared" / "earlier-study" / cited.group(1)).exists():
            # a number the source cites is printed in the cell it names
            cell = (ROOT.parent / "shared" / "earlier-study" / cited.group(1)).read_text().split(
                f"# ---- code cell {cited.group(2)} ----")[1].split("# ---- code cell")[0]
            assert all(x in cell for x in re.findall(r"\d\.\d{4}", r["source"])), r
        if r["split"] != "unknown":  # the number is printed where the source says (when ../shared is here)
            where = r["source"].split(",")[0]
            assert "cell" in r["source"].split(":")[0]
            notebook = ROOT.parent / "shared" / "earlier-study" / where
            if notebook.exists():
                import re
                n = re.search(r"cell (\d+)", r["source"]).group(1)
                cell = notebook.read_text().split(f"# ---- code cell {n} ----")[1].split("# ---- code cell")[0]
                printed = [float(x) for x in re.findall(r"\d\.\d{4,}", cell)]
                assert any(round(x, 3) == float(r["study_accuracy"]) for x in printed), r
    nnlm = next(r for r in rows if r["model"].startswith("pre-trained") and r["variant"] == "lyrics")
    assert (nnlm["study_accuracy"], nnlm["split"]) == ("0.571", "test") and "demo.py" in nnlm["source"]


def test_describe_shows_hyperparameters_only_some_values_declare(capsys):
    """Issue 42: --describe lyrics_cnn missed filters_4, which only conv_blocks = 4 declares."""
    assert cli(["lyrics_cnn", "--describe"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[4:] if line.strip()}
    assert "filters_4" in rows and rows["filters_4"].rstrip().endswith("conv_blocks = 4")


def test_the_readme_stays_short():
    """Issue 42: 250 lines at most; detail goes to docs/ (docs/reference.md), linked from the README."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_a_family_name_in_any_case_is_that_family_and_usage_names_the_command(capsys, monkeypatch):
    """Issue 52: LYRICS_LSTM got the list of all 13 families; `lyrics-search --help` said `usage: runners/search.py`."""
    assert cli(["LYRICS_TFIDF_LOGREG", "--describe"]) == 0
    assert capsys.readouterr().out.startswith("lyrics_tfidf_logreg: ")
    from lyrics_cifar_search.runners import search, study
    for module, script, console in ((search, "runners/search.py", "lyrics-search"),
                                    (study, "runners/study.py", "lyrics-study")):
        monkeypatch.setattr("sys.argv", [f"/usr/local/bin/{console}", "--help"])
        assert module.build_parser().prog == console
        monkeypatch.setattr("sys.argv", [script, "--help"])
        assert module.build_parser().prog == script


def test_the_summary_opens_with_a_plain_verdict_kept_in_search_json_and_the_report(tmp_path, small_lyrics, capsys):
    """Issue 52: the user read "the best model is worse than the baseline and no better than always answering
    Rock" from two McNemar p-values on one line. The summary now opens with the verdict, in plain words, from
    the same test-set numbers; search.json and the report keep it."""
    from lyrics_cifar_search.analysis import report
    res = tmp_path / "res"
    for family, extra in (("lyrics_decision_tree", ["--max-trials", "4"]),
                          ("lyrics_embedding", ["--max-trials", "2", "--epochs", "1"])):
        assert cli([family, "--data", str(small_lyrics), "--results-dir", str(res), *extra]) == 0
        out = capsys.readouterr().out
        summary = out[out.index(f"{family}: "):].splitlines()
        said = json.loads((res / family / "search.json").read_text())["verdict"]
        assert summary[1] == f"  verdict   {said['verdict']} (on the test split)"
        if not said.get("beats_majority_p", 0) < 0.05:
            assert said["verdict"] == f"learned nothing beyond always answering {said['majority_class']!r}"
        elif said.get("test_gain", 0) > 0 and said["test_gain_p"] < 0.05:
            assert said["verdict"] == "beats the baseline"
        else:
            assert said["verdict"].startswith("no better than the baseline")
    # one search of each kind here: the tree beats its baseline, the 1-epoch embedding model learns nothing
    verdicts = {f: json.loads((res / f / "search.json").read_text())["verdict"]["verdict"]
                for f in ("lyrics_decision_tree", "lyrics_embedding")}
    assert verdicts["lyrics_embedding"].startswith("learned nothing beyond always answering")
    assert report.main(["--results-dir", str(res)]) == 0
    text = (res / "report.md").read_text()
    assert all(f"**Verdict: {v}**" in text for v in verdicts.values())
