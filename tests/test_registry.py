import pytest

import search_spaces
from suite_common import UserError


def test_lists_and_filters_families():
    assert {"lyrics_lstm", "lyrics_tfidf_logreg"} <= set(search_spaces.list_families())
    assert "lyrics_tfidf_logreg" in search_spaces.list_families(engine="optuna")
    assert "lyrics_lstm" not in search_spaces.list_families(engine="optuna")
    assert search_spaces.list_families("lyrics_ls*") == ["lyrics_lstm"]


def test_every_family_declares_what_the_runner_needs():
    for name, module in search_spaces.families().items():
        assert module.NAME == name and module.TASK in ("lyrics", "cifar")
        if module.ENGINE == "keras_tuner":
            assert hasattr(module, "HyperModel") and module.EPOCHS > 0
        else:
            assert module.ENGINE == "optuna"
            assert {"DEFAULTS", "suggest", "make_features", "make_classifier"} <= set(dir(module))


def test_unknown_family_names_the_valid_ones():
    with pytest.raises(UserError) as e:
        search_spaces.get_family("lyrics_nope")
    assert "lyrics_lstm" in str(e.value) and "lyrics_tfidf_logreg" in str(e.value)
