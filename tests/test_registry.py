import subprocess
import sys

import pytest

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.suite_common import UserError


def test_lists_and_filters_families():
    assert {"lyrics_lstm", "lyrics_tfidf_logreg"} <= set(search_spaces.list_families())
    assert "lyrics_tfidf_logreg" in search_spaces.list_families(engine="optuna")
    assert "lyrics_lstm" not in search_spaces.list_families(engine="optuna")
    assert search_spaces.list_families("lyrics_ls*") == ["lyrics_lstm"]


def test_every_family_declares_what_the_runner_needs():
    for name, family in search_spaces.families().items():
        assert family.name == name and family.task in ("lyrics", "cifar")
        assert family.module == f"lyrics_cifar_search.search_spaces.{name}"  # one module per family, named after it
        if family.engine == "keras_tuner":
            assert family.hypermodel is not None and family.epochs > 0
        else:
            assert family.engine == "optuna"
            assert family.defaults and family.suggest and family.make_features and family.make_classifier


def test_each_engine_has_its_own_family_type_with_only_its_hooks():
    """Registered and described (from source) alike: a KerasFamily has no Optuna hook and the reverse."""
    for name, family in search_spaces.families().items():
        for each in (family, search_spaces.describe(name)):
            assert type(each) is search_spaces.FAMILY_TYPES[family.engine]
            other = "optuna" if family.engine == "keras_tuner" else "keras_tuner"
            assert not any(hasattr(each, hook) for hook in search_spaces.ENGINE_FIELDS[other]), name
    with pytest.raises(TypeError):
        search_spaces.OptunaFamily("x", "lyrics", "optuna", "d", epochs=3)


def test_a_family_missing_a_required_hook_is_refused_when_it_registers():
    with pytest.raises(TypeError, match="needs epochs"):
        search_spaces.register_family("x_nope", task="lyrics", description="d")(object)
    with pytest.raises(TypeError, match="needs defaults"):
        search_spaces.register_family("x_nope", task="lyrics", description="d", engine="optuna")(lambda t: {})
    assert "x_nope" not in search_spaces.families()


def test_a_family_given_the_other_engines_hooks_is_refused():
    """Each engine's family may set only its own fields, and is told which those are."""
    with pytest.raises(TypeError, match="suggest belong to the other engine's families"):
        search_spaces.register_family("x_nope", task="lyrics", description="d", epochs=2, suggest=len)(object)
    with pytest.raises(TypeError, match="epochs, first_trials belong to the other engine's families"):
        search_spaces.register_family("x_nope", task="lyrics", description="d", engine="optuna", defaults={"a": 1},
                                      make_features=len, make_classifier=len, epochs=3,
                                      first_trials=({},))(lambda t: {})
    with pytest.raises(TypeError, match="engine must be one of"):
        search_spaces.register_family("x_nope", task="lyrics", description="d", engine="sklearn")(object)
    assert "x_nope" not in search_spaces.families()


def test_unknown_family_names_the_closest_ones_in_any_case():
    """Issue 52: a misspelt name got the list of all 13 with no "did you mean"; a name in capitals was unknown."""
    with pytest.raises(UserError) as e:
        search_spaces.get_family("lyrics_lstn")
    assert str(e.value).startswith("unknown family 'lyrics_lstn'; did you mean lyrics_lstm")
    assert "lyrics_tfidf_logreg" not in str(e.value) and "`--list` shows all 13" in str(e.value)
    with pytest.raises(UserError, match="unknown family 'zzz' \\(`--list` shows all"):
        search_spaces.get_family("zzz")
    assert search_spaces.get_family("LYRICS_TFIDF_LOGREG").name == "lyrics_tfidf_logreg"
    assert search_spaces.describe("Lyrics_LSTM").name == "lyrics_lstm"


def test_listing_imports_no_family_module():
    """--list, describe() and a wrong name are answered from the modules' source: no family module, no Keras."""
    code = ("import sys\nfrom lyrics_cifar_search import search_spaces as s\n"
            "rows = s.summaries(); [s.describe(r[0]) for r in rows]; s.list_families(engine='optuna')\n"
            "try:\n    s.get_family('nope')\nexcept Exception:\n    pass\n"
            "loaded = [m for m in sys.modules if m.startswith('lyrics_cifar_search.search_spaces.') and not m.startswith('lyrics_cifar_search.search_spaces._')]\n"
            "print(len(rows), loaded, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(search_spaces.index())), "[]", "False"]


def test_a_declared_field_that_is_not_a_literal_is_refused(tmp_path):
    """An imported constant as engine= cannot be read from the source: refused, not listed as Keras Tuner."""
    source = tmp_path / "x_family.py"
    source.write_text("from somewhere import ENGINE\nEPOCHS = 3\n\n"
                      "@register_family('x_family', task='lyrics', description='d', engine=ENGINE, epochs=EPOCHS)\n"
                      "def suggest(trial):\n    return {}\n")
    with pytest.raises(TypeError, match="engine must be written as a literal"):
        list(search_spaces._declared(source))
    source.write_text(source.read_text().replace("engine=ENGINE", "engine='optuna', make_classifier=make"))
    assert list(search_spaces._declared(source)) == [("x_family", {"engine": "optuna", "task": "lyrics",
                                                                    "description": "d", "epochs": 3})]


def test_a_family_whose_source_says_otherwise_is_refused(monkeypatch):
    """The registered object and what its source declares cannot disagree: registering checks."""
    import importlib
    module = importlib.import_module("lyrics_cifar_search.search_spaces.lyrics_lstm")
    real = search_spaces._declared
    monkeypatch.setattr(search_spaces, "_declared",
                        lambda path: ((n, {**f, "epochs": f["epochs"] + 1}) for n, f in real(path)))
    try:
        with pytest.raises(TypeError, match=r"differs from what it registers \(epochs\)"):
            importlib.reload(module)
    finally:
        monkeypatch.undo()
        importlib.reload(module)  # whole again, for the tests after this one


def test_listing_reads_what_the_modules_register():
    """What the source declares is what the registered families hold."""
    registered = search_spaces.families()
    assert [row[0] for row in search_spaces.summaries()] == list(registered)
    for name, task, engine, description in search_spaces.summaries():
        f = registered[name]
        assert (task, engine, description) == (f.task, f.engine, f.description)
        declared = search_spaces.describe(name)  # what the CLI checks flags and loads data with
        for field in search_spaces.DECLARED:
            assert hasattr(declared, field) == hasattr(f, field), (name, field)
            assert getattr(declared, field, None) == getattr(f, field, None), (name, field)
