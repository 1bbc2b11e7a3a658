"""Issue 53, item 4: the two engines end a trial the same way, through runners/trial_end.py (stage, settle,
write_record, too_many_failures), read from their source: neither stages, promotes, keeps or evicts models
itself, so a change to what a trial leaves is made once."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("runners/keras_search/tuner.py", "runners/optuna_engine.py")
# what a trial leaves, done only in trial_end.py
ONCE = {"stage_best", "promote", "save_baseline", "upload_if_kept", "evict", "trial_done"}


def calls(path):
    """The names of the functions and methods the module calls."""
    tree = ast.parse((ROOT / path).read_text())
    return {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            for node in ast.walk(tree) if isinstance(node, ast.Call)}


def test_both_engines_end_a_trial_through_trial_end():
    for engine in ENGINES:
        called = calls(engine)
        assert called & ONCE == set(), engine
        assert {"model_meta", "stage", "settle", "write_record"} <= called, engine
    assert ONCE <= calls("runners/trial_end.py")
