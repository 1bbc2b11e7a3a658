"""A study's plan: the TOML file's searches, each a dict of runners/search.py flags (defaults, then its task's,
then its own), the command line's data and budget over them, and each search's own command line."""

import argparse
import fnmatch
import tomllib
from pathlib import Path
from typing import Any, Sequence

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.runners import shaping
from lyrics_cifar_search.runners.flag_types import duration, positive_int
from lyrics_cifar_search.suite_common import UserError

Entry = dict[str, Any]  # one search of the plan: its flags ({"family": ..., "max_trials": ...})

BUDGET_KEYS = ("max_trials", "epochs", "time_budget")


class StudyError(Exception):
    """Bad input to the study runner: one line, exit 2."""


def task_of(family: str) -> str:
    """The family's task, as its module declares it (nothing imported)."""
    try:
        return search_spaces.describe(family).task
    except UserError as e:
        raise StudyError(str(e)) from None


def search_key(entry: Entry) -> str:
    return entry["family"] + ("_artist" if entry.get("with_artist") else "")


def load_plan(path: str | Path) -> list[Entry]:
    """The plan's searches, each a dict of flags (defaults, then its task's, then its own)."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"plan not found: {path}: pass a TOML plan (see studies/earlier_study.toml)")
    try:
        plan = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise StudyError(f"{path} is not a readable TOML plan ({e})") from None
    searches = plan.get("search")
    if not isinstance(searches, list) or not searches:
        raise StudyError(f"{path} lists no [[search]] entries")
    for table in ("defaults", "lyrics", "cifar"):
        if not isinstance(plan.get(table, {}), dict):
            raise StudyError(f"{path}: [{table}] must be a table of flags (e.g. [{table}] then max_trials = 10), "
                             f"not {type(plan[table]).__name__} {plan[table]!r}")
    out = []
    for i, own in enumerate(searches, start=1):
        if not isinstance(own, dict) or not isinstance(own.get("family"), str):
            raise StudyError(f"{path}: search {i} has no family")
        entry = {**plan.get("defaults", {}), **plan.get(task_of(own["family"]), {}), **own}
        entry = {k.replace("-", "_"): v for k, v in entry.items()}
        _check_budget(f"{path}: search {i} ({own['family']})", entry)
        out.append(entry)
    return out


def _check_budget(where, entry):
    """A plan's budget values, as the command line would take them (one line, not a traceback, if not)."""
    for key, parse in (("max_trials", positive_int), ("epochs", positive_int), ("workers", positive_int),
                       ("time_budget", duration)):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            kind = "a duration such as 90s" if key == "time_budget" else "a whole number"
            raise StudyError(f"{where}: {key} must be {kind}, not {type(value).__name__} {value!r}")
        try:
            parse(str(value))
        except argparse.ArgumentTypeError as e:
            raise StudyError(f"{where}: {key} {value!r}: {e}") from None


def apply_overrides(searches: list[Entry], args: argparse.Namespace) -> list[Entry]:
    """The command line's data and budget flags over the plan's."""
    for entry in searches:
        if args.lyrics_data and task_of(entry["family"]) == "lyrics":
            entry["data"] = args.lyrics_data
        if args.test_data and task_of(entry["family"]) == "lyrics":
            entry["test_data"] = args.test_data
        if args.images_data and task_of(entry["family"]) == "cifar":
            entry["data"] = args.images_data
        for key in ("max_trials", "epochs", "time_budget", "workers"):
            if getattr(args, key) is not None:
                entry[key] = getattr(args, key)
        entry["results_dir"] = args.results_dir
        for flag in ("verbose", "quiet"):  # each search shows what the study was asked to
            if getattr(args, flag, False):
                entry[flag] = True
    return searches


def search_argv(entry: Entry) -> list[str]:
    """runners/search.py's command line for one plan entry."""
    argv = [entry["family"]]
    for key, value in entry.items():
        if key == "family" or value is None or value is False:
            continue
        if key in ("set", "range", "choices") and isinstance(value, dict):  # set = {units = 32}, ...
            argv += shaping.flags_of(key, value)
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv


def budget_of(entry: Entry) -> dict[str, Any]:
    return {k: entry.get(k) for k in BUDGET_KEYS}


def describe_budget(entry: Entry) -> str:
    parts = [f"{entry['max_trials']} trials" if entry.get("max_trials") else "10 trials"]
    if entry.get("epochs"):
        parts.append(f"<= {entry['epochs']} epochs")
    if entry.get("time_budget"):
        parts.append(f"<= {entry['time_budget']}")
    return ", ".join(parts)


def flags_of(entry: Entry) -> list[str]:
    """What a search runs on and how (its flags but the budget, the results folder and what it prints): run
    again with other flags, a done search is not done (its own resume check then decides)."""
    skip = {*BUDGET_KEYS, "max_trials", "results_dir", "verbose", "quiet", "fresh"}
    return search_argv({k: v for k, v in entry.items() if k not in skip})


def data_of(entry: Entry) -> str:
    """What a search reads: its --data file, or the default of its task."""
    if entry.get("data"):
        return str(entry["data"])
    return "generated demo lyrics" if task_of(entry["family"]) == "lyrics" else "keras.datasets CIFAR-100"


def mark_fresh(searches: list[Entry], patterns: Sequence[str]) -> None:
    """--fresh [NAME]: the searches it names run from nothing (each search discards its own results)."""
    for pattern in patterns:
        named = [e for e in searches if fnmatch.fnmatch(search_key(e), pattern)]
        if not named:
            hint = " (the plan goes before --fresh)" if pattern.endswith(".toml") else ""
            raise StudyError(f"--fresh {pattern!r} names no search of the plan{hint}; "
                             f"its searches: {', '.join(search_key(e) for e in searches)}")
        for entry in named:
            entry["fresh"] = True
