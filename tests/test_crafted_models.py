"""Model files whose types are all allowed but whose values are crafted (issue 28): a decision tree with child
indices past its end, a split feature of 2·10⁹, a cycle; a logistic regression or vocabulary of the wrong
shape. Each is refused with one line when loaded (load_best, the demo), before compiled code indexes with
it; the suite's own models still load. The crafted files are never used for prediction here: if a check
let one through, the test fails on the missing refusal, not with a segmentation fault."""

import io
import shutil

import numpy as np
import pytest
import skops.io as sio

from lyrics_cifar_search.analysis import demo
from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.suite_common import UserError

FAST = ["--seq-len", "30", "--vocab-size", "300"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, small_lyrics):
    res = tmp_path_factory.mktemp("crafted") / "results"
    for family in ("lyrics_decision_tree", "lyrics_tfidf_logreg"):
        assert cli([family, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "1", *FAST]) == 0
    return res


def crafted_tree(model, change):
    """The saved tree pipeline with one field of its node array (or its values) changed."""
    tree = model.steps[-1][1].tree_
    state = tree.__getstate__()
    nodes, values = state["nodes"].copy(), state["values"].copy()
    change(nodes, values)
    tree.__setstate__({**state, "nodes": nodes, "values": values})
    return model


def inner_node(nodes):
    return int(np.flatnonzero(nodes["left_child"] != -1)[0])


TREE_CASES = {
    "child millions past the end": lambda n, v: n["left_child"].__setitem__(inner_node(n), 5_000_000),
    "split feature 2e9": lambda n, v: n["feature"].__setitem__(inner_node(n), 2_000_000_000),
    "negative split feature": lambda n, v: n["feature"].__setitem__(inner_node(n), -7),
    "a cycle back to the root": lambda n, v: n["right_child"].__setitem__(inner_node(n), 0),
    "a one-child node": lambda n, v: n["right_child"].__setitem__(inner_node(n), -1),
    "a NaN threshold": lambda n, v: n["threshold"].__setitem__(inner_node(n), np.nan),
}


@pytest.mark.parametrize("case", sorted(TREE_CASES))
def test_a_crafted_tree_is_refused(tmp_path, finished, capsys, case):
    res = tmp_path / "results"
    shutil.copytree(finished, res)
    path = res / "lyrics_decision_tree" / "best" / "model.skops"
    model = crafted_tree(load_best("lyrics_decision_tree", res).model, TREE_CASES[case])
    sio.dump(model, path)
    with pytest.raises(UserError, match="not a model this suite saved") as e:
        load_best("lyrics_decision_tree", res)
    assert "\n" not in str(e.value)
    capsys.readouterr()
    assert demo.main(["--results-dir", str(res), "--lyrics", "la la", "--family", "lyrics_decision_tree"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to use it" in err


def _logreg_wide(model):
    clf = model.steps[-1][1]
    clf.coef_ = np.zeros((clf.coef_.shape[0], clf.coef_.shape[1] + 3))


def _logreg_nan(model):
    model.steps[-1][1].intercept_[:] = np.nan


def _class_past_labels(model):
    model.steps[-1][1].classes_ = model.steps[-1][1].classes_ + 1000


def _vocabulary_hole(model):
    counts = model.steps[0][1].steps[0][1] if hasattr(model.steps[0][1], "steps") else model.steps[0][1]
    vocabulary = dict(getattr(counts, "vocabulary_", None) or {w: i for i, w in enumerate(counts.vocabulary)})
    vocabulary[next(iter(vocabulary))] = 10 ** 9
    counts.vocabulary = counts.vocabulary_ = vocabulary


def test_the_suites_own_models_pass_the_checks(finished):
    for family in ("lyrics_decision_tree", "lyrics_tfidf_logreg"):
        model = load_best(family, finished)
        assert model.predict(["la la love"])[0] in model.label_names


@pytest.mark.parametrize("module", ["study_data.text", "study_data.lyrics"])
def test_a_tree_saved_by_0_1_loads_and_leaves_no_top_level_name(tmp_path, finished, module):
    """0.1's suite had top-level packages: its decision trees name their transformer's module study_data.text
    (or study_data.lyrics before that). They load, and no study_data is left in sys.modules to shadow a user's."""
    import sys
    import zipfile
    res = tmp_path / "results"
    shutil.copytree(finished, res)
    path = res / "lyrics_decision_tree" / "best" / "model.skops"
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    schema = files["schema.json"].decode()
    assert '"lyrics_cifar_search.study_data.text"' in schema
    files["schema.json"] = schema.replace('"lyrics_cifar_search.study_data.text"', f'"{module}"').encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    model = load_best("lyrics_decision_tree", res)
    assert model.predict(["la la love"]) == load_best("lyrics_decision_tree", finished).predict(["la la love"])
    assert not {"study_data", module} & set(sys.modules)


# --- values that cost memory or time, not types (issue 40) ----------------------------------------------------

def _counts_of(model):
    """The CountVectorizer step of the saved TF-IDF pipeline."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.pipeline import Pipeline
    steps = [s for _, s in model.steps[:-1]]
    while steps:
        step = steps.pop(0)
        if isinstance(step, Pipeline):
            steps = [s for _, s in step.steps] + steps
        elif isinstance(step, CountVectorizer):
            return step
    raise AssertionError("no CountVectorizer")


def _huge_ngrams(model):
    _counts_of(model).ngram_range = (1, 100000)  # accepted before: predicted at 3.6 GB


def _backtracking_pattern(model):
    _counts_of(model).token_pattern = r"(a+)+$"  # catastrophic backtracking on "aaaa...b"


# values that break compiled code (the first four), or cost memory or time at predict (the last two: issue 40)
@pytest.mark.parametrize("change", [_logreg_wide, _logreg_nan, _class_past_labels, _vocabulary_hole, _huge_ngrams,
                                    _backtracking_pattern])
def test_a_crafted_logistic_regression_is_refused(tmp_path, finished, change):
    res = tmp_path / "results"
    shutil.copytree(finished, res)
    model = load_best("lyrics_tfidf_logreg", res).model
    change(model)
    sio.dump(model, res / "lyrics_tfidf_logreg" / "best" / "model.skops")
    with pytest.raises(UserError, match="not a model this suite saved"):
        load_best("lyrics_tfidf_logreg", res)


def test_a_huge_declared_array_is_refused_before_it_is_read(tmp_path, finished):
    """A coef_ declared 3 x 20,000,000 in the archive: refused from its header, before the loader reads it
    (it grew to 1.1 GB first)."""
    import tracemalloc
    import zipfile

    import numpy as np
    res = tmp_path / "results"
    shutil.copytree(finished, res)
    path = res / "lyrics_tfidf_logreg" / "best" / "model.skops"
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    name = max((n for n in members if n.endswith(".npy")), key=lambda n: len(members[n]))
    header = np.lib.format.header_data_from_array_1_0(np.zeros((3, 20_000_000), dtype=np.float64))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    members[name] = buf.getvalue() + b"\0" * 64  # a header that declares 480 MB, and almost nothing after it
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match="larger than any the suite saves"):
            load_best("lyrics_tfidf_logreg", res)
        assert tracemalloc.get_traced_memory()[1] < 100 * 2 ** 20
    finally:
        tracemalloc.stop()
