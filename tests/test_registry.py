import pytest

import search_spaces
from suite_common import UserError


def test_lists_and_filters_families():
    assert {"lyrics_lstm", "lyrics_tfidf_logreg"} <= set(search_spaces.list_families())
    assert "lyrics_tfidf_logreg" in search_spaces.list_families(engine="optuna")
    assert "lyrics_lstm" not in search_spaces.list_families(engine="optuna")
    assert search_spaces.list_families("lyrics_ls*") == ["lyrics_lstm"]


def test_every_family_declares_what_the_runner_needs():
    for name, family in search_spaces.families().items():
        assert family.name == name and family.task in ("lyrics", "cifar")
        assert family.module == f"search_spaces.{name}"  # one module per family, named after it
        if family.engine == "keras_tuner":
            assert family.hypermodel is not None and family.epochs > 0
        else:
            assert family.engine == "optuna"
            assert family.defaults and family.suggest and family.make_features and family.make_classifier


def test_a_family_missing_a_required_hook_is_refused_when_it_registers():
    with pytest.raises(TypeError, match="needs epochs"):
        search_spaces.register_family("x_nope", task="lyrics", description="d")(object)
    with pytest.raises(TypeError, match="needs defaults"):
        search_spaces.register_family("x_nope", task="lyrics", description="d", engine="optuna")(lambda t: {})
    assert "x_nope" not in search_spaces.families()


def test_unknown_family_names_the_valid_ones():
    with pytest.raises(UserError) as e:
        search_spaces.get_family("lyrics_nope")
    assert "lyrics_lstm" in str(e.value) and "lyrics_tfidf_logreg" in str(e.value)


def test_listing_reads_what_the_modules_register_without_importing_them():
    """--list and a wrong name are answered from the modules' source (no Keras); it says the same as the
    registered families."""
    registered = search_spaces.families()
    assert [row[0] for row in search_spaces.summaries()] == list(registered)
    for name, task, engine, description in search_spaces.summaries():
        f = registered[name]
        assert (task, engine, description) == (f.task, f.engine, f.description)
        declared = search_spaces.describe(name)  # what the CLI checks flags and loads data with
        for field in ("task", "engine", "inputs", "block", "epochs", "patience", "objective", "targets",
                      "first_trials", "defaults", "feature_params", "source_families"):
            assert getattr(declared, field) == getattr(f, field), (name, field)
