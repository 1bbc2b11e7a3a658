#!/usr/bin/env python
"""Run a whole study: every search of a plan, in order, then the comparison tables and the report.

    python runners/study.py                                   # studies/earlier_study.toml
    python runners/study.py --dry-run                         # the plan, what is done, time left
    python runners/study.py --only 'lyrics_tfidf_logreg*' --lyrics-data train.csv --max-trials 2
    python runners/study.py my_plan.toml --time-budget 5m --results-dir results

A plan is TOML (studies/earlier_study.toml is the earlier study): [defaults],
[lyrics] and [cifar] hold runners/search.py flags for every search or one
task's, and each [[search]] names a family and may set any flag of its own.
Each search runs as `runners/search.py` would run it, in its own process.
Re-running the same command resumes: a search already done with the same
budget is skipped, an unfinished one is topped up. A search that fails on bad
input stops the study with its one line; one that fails otherwise is
reported and the study goes on, naming it at the end.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Collection, NoReturn, Optional, Sequence

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search import studies
from lyrics_cifar_search.runners import shaping, trials_table
from lyrics_cifar_search.runners.flag_types import duration, positive_int
from lyrics_cifar_search.suite_common import UserError, atomic, console, error_line, invoked_as
from lyrics_cifar_search.suite_common.process import child_env
from lyrics_cifar_search.suite_common.status import ENDED
# the plan's searches (study_plan.py)
from lyrics_cifar_search.runners.study_plan import (Entry, StudyError, apply_overrides, budget_of, data_of,
                                                    describe_budget, flags_of, load_plan, mark_fresh, search_argv,
                                                    search_key, task_of)

State = dict[str, Any]  # the study's state file: each search's status, budget, flags and time

DEFAULT_PLAN = studies.path("earlier_study.toml")  # shipped in the package: a wheel install has it too
STATE = "study_state.json"


def trials_on_record(results_dir: str | Path, key: str) -> tuple[int, Optional[tuple[str, Any]]]:
    """(finished trials, best validation score or None) of a search's trials.csv."""
    path = Path(results_dir) / key / "trials.csv"
    if not path.is_file():
        return 0, None
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return 0, None
    done = [r for r in rows if r.get("status") in ENDED]
    record = trials_table.run_record(Path(results_dir) / key)
    objective = record.get("objective")  # the family's own, if any; a damaged record: the default
    if not (isinstance(objective, list) and len(objective) >= 2 and isinstance(objective[0], str)
            and objective[1] in ("max", "min")):
        objective = ["val_accuracy", "max"]
    objective = tuple(objective[:2])
    scored = []
    for r in done:  # a cell that is not a number (a damaged table) is no score
        try:
            scored.append({**r, objective[0]: float(r[objective[0]])})
        except (KeyError, TypeError, ValueError):
            pass
    best = trials_table.best_of([r for r in scored if trials_table.is_score(r[objective[0]])], objective)
    return len(done), (objective[0], best[objective[0]] if best else None)


def read_state(results_dir: str | Path) -> State:
    """{search: {"status", "seconds", ...}} of the searches run so far; a state file that is not what the study
    writes (atomically) is refused with one line."""
    path = Path(results_dir) / STATE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StudyError(f"{path} is damaged ({type(e).__name__}): delete it; the study then runs (or resumes, "
                         "from their own results) every search of the plan") from None
    number = (int, float)
    for key, entry in (state.items() if isinstance(state, dict) else [(None, None)]):
        if not (isinstance(entry, dict) and entry.get("status") in ("done", "failed")
                and isinstance(entry.get("seconds"), number) and not isinstance(entry.get("seconds"), bool)
                and isinstance(entry.get("trials", 0), int)):
            raise StudyError(f"{path} is damaged (its entry {key!r} is not a search's status): delete it; the "
                             "study then runs (or resumes, from their own results) every search of the plan")
    return state


def write_state(results_dir: str | Path, state: State) -> None:
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    atomic.write_text(Path(results_dir) / STATE, json.dumps(state, indent=2))


def is_done(state: State, entry: Entry) -> bool:
    if entry.get("fresh"):  # --fresh: run again whatever is on record
        return False
    s = state.get(search_key(entry)) or {}
    # the same flags (a state written before they were kept: the budget alone)
    return (bool(s) and s.get("status") == "done" and s.get("budget") == budget_of(entry)
            and s.get("flags", flags_of(entry)) == flags_of(entry))


def hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def estimate_left(state: State, pending: int) -> Optional[float]:
    """Seconds left: the mean time of the searches done so far, times those still to run."""
    times = [s["seconds"] for s in state.values() if isinstance(s, dict) and s.get("seconds")]
    return sum(times) / len(times) * pending if times else None


def cannot_run(entry: Entry) -> Optional[str]:
    """Why a search cannot run on its data (checked before the study starts), or None."""
    if not entry.get("with_artist") or not entry.get("data") or task_of(entry["family"]) != "lyrics":
        return None
    # pandas and scikit-learn: only when data is loaded
    from lyrics_cifar_search.study_data.lyrics_table import header_has_artist
    columns = {k: entry.get(f"{k}_column") for k in ("text", "label", "artist")}
    if not header_has_artist(entry["data"], columns):
        return f"{entry['data']} has no artist column (--with-artist needs one; or name it with artist_column)"
    return None


def cannot_run_all(searches: Sequence[Entry]) -> dict[str, list[str]]:
    """{reason: [search, ...]} for the searches that cannot run on their data."""
    found: dict[str, list[str]] = {}
    for entry in searches:
        why = cannot_run(entry)
        if why:
            found.setdefault(why, []).append(search_key(entry))
    return found


def refusals(searches: Sequence[Entry], state: State, skipped: Collection[str] = ()) -> dict[str, str]:
    """{search: why} for the searches still to run that runners/search.py would refuse before their first trial
    (bad flags; a results folder holding a search made with other data or options: its resume check); skipped:
    the keys cannot_run_all already set aside."""
    from lyrics_cifar_search.runners import search  # its flags and checks, in this process (no Keras started)
    found: dict[str, str] = {}
    for entry in searches:
        if not is_done(state, entry) and search_key(entry) not in skipped:
            why = search.refusal(search_argv(entry))
            if why:
                found[search_key(entry)] = why
    return found


def dry_run(searches: Sequence[Entry], state: State, results_dir: str | Path) -> None:
    pending, budgets, unbounded = 0, 0.0, 0
    blocked = cannot_run_all(searches)  # each data file's header read once
    refused = refusals(searches, state, {key for keys in blocked.values() for key in keys})
    print(f"{len(searches)} searches, results in {Path(results_dir).resolve()}/<search>/:")
    rows = [("", "search", "data", "epochs", "trials", "budget", "status")]
    for k, entry in enumerate(searches, start=1):
        key = search_key(entry)
        n, best = trials_on_record(results_dir, key)
        if is_done(state, entry):
            status = f"done ({n} trials, {state[key]['seconds']:.0f} s)"
        elif key in refused:
            status = f"cannot run ({n} trials on record): below" if n else "cannot run: below"
        else:
            pending += 1
            status = f"{n} trials on record" if n else "not started"
            if entry.get("fresh"):
                status = f"starts again (--fresh discards {n} trials)" if n else "not started"
        try:
            shape = shaping.of_entry(entry)
        except UserError as e:
            shape, status = None, f"{status}; its shaping is refused: {e}"
        if shape:
            status += f"; shaped: {'; '.join(shape.lines())}"
        if "," in str(entry.get("objective") or ""):  # several objectives: a Pareto search, no pruning
            status += f"; Pareto search of {entry['objective']} (no pruning)"
        if entry.get("keep_models") or entry.get("artifact_store"):
            status += (f"; keeps {entry.get('keep_models') or 1} best models"
                       + (f" in {entry['artifact_store']}" if entry.get("artifact_store") else ""))
        family = search_spaces.describe(entry["family"])
        epochs = str(entry.get("epochs") or getattr(family, "epochs", None)) if family.engine == "keras_tuner" else "-"
        if entry.get("time_budget"):
            budgets += duration(entry["time_budget"])
        else:
            unbounded += 1
        rows.append((f"{k}.", key, data_of(entry), epochs, str(entry.get("max_trials") or 10),
                     str(entry.get("time_budget") or "none"), status))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        print("  " + "  ".join(f"{r[i]:<{widths[i]}}" if i else f"{r[i]:>{widths[i]}}" for i in range(6)) + "  " + r[6])
    print(f"sum of the time budgets: {hms(budgets)}" + (f" (and {unbounded} searches bounded by their trials only)"
                                                          if unbounded else " (the study takes at most about that)"))
    left = estimate_left(state, pending)
    unknown = "unknown until a search has run (at most the sum of the time budgets)"
    print(f"{pending} to run; time left: "
          + (f"~{hms(left)} (from the searches done so far)" if left is not None else unknown))
    for why, keys in blocked.items():
        print(f"warning: {', '.join(keys)} cannot run: {why}; the study will skip "
              f"{'it' if len(keys) == 1 else 'them'}", flush=True)
    for key, why in refused.items():
        print(f"cannot run: {key}: {why}", flush=True)
    if refused:
        print(f"the study would stop at {'the first of these' if len(refused) > 1 else 'it'}: fix the flags, or "
              f"discard what is on record with --fresh {next(iter(refused))} (each one), or --fresh for every "
              "search", flush=True)


_STEP: list[subprocess.Popen] = []  # the child process running now
_TERMINATED: list[int] = []  # a SIGTERM arrived: the study stops once the running step has stopped


def run_step(argv: list[str]) -> int:
    """One child process (a search, compare or report), its output passed through; its exit code. The child
    dies with this process (a SIGTERM: it stops after its trial in progress, holding its own lock until then)."""
    with subprocess.Popen([sys.executable, *argv], env={**os.environ, **child_env(signal.SIGTERM)}) as proc:
        _STEP[:] = [proc]
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C (the terminal sent it to the child too) or a second SIGTERM
            proc.kill()
            raise
        finally:
            _STEP.clear()
    if _TERMINATED:
        raise KeyboardInterrupt
    return code


def _on_sigterm(signum, frame):
    """SIGTERM as Ctrl-C: passed on to the running search, which stops after its trial in progress; then the
    study stops and says how to resume. A second SIGTERM stops at once."""
    if _TERMINATED:
        raise KeyboardInterrupt
    _TERMINATED.append(signum)
    for proc in _STEP:
        proc.send_signal(signal.SIGTERM)
    print("\nSIGTERM: stopping after the running search's trial in progress", file=sys.stderr, flush=True)


def run_study(searches: list[Entry], args: argparse.Namespace) -> int:
    results_dir = args.results_dir
    state = read_state(results_dir)
    start, failed = time.time(), []
    ran = 0
    blocked = cannot_run_all(searches)
    skipped = [key for keys in blocked.values() for key in keys]
    for why, keys in blocked.items():  # said now, not when the study reaches them
        print(f"[study] warning: {', '.join(keys)} cannot run: {why}; skipping "
              f"{'it' if len(keys) == 1 else 'them'}", flush=True)
    for k, entry in enumerate(searches, start=1):
        key = search_key(entry)
        if key in skipped:
            continue
        if is_done(state, entry):
            print(f"[study] search {k} of {len(searches)}: {key} already done; skipped", flush=True)
            continue
        pending = sum(not is_done(state, e) for e in searches[k - 1:])
        left = estimate_left(state, pending)
        print(f"[study] search {k} of {len(searches)}: {key} ({describe_budget(entry)}) | elapsed "
              f"{hms(time.time() - start)}" + (f" | ~{hms(left)} left" if left is not None else ""), flush=True)
        t0 = time.time()
        code = run_step(["-m", "lyrics_cifar_search.runners.search", *search_argv(entry)])
        seconds = time.time() - t0
        ran += 1
        if code == 2:  # bad input: the search printed its one line
            raise StudyError(f"the study stopped at {key} (bad input, above); fix it and run the same command "
                             f"to resume, or add --fresh {key} to discard what that search holds")
        n, best = trials_on_record(results_dir, key)
        if code != 0:
            failed.append(key)
            state[key] = {"status": "failed", "exit_code": code, "seconds": round(seconds, 1),
                          "budget": budget_of(entry), "flags": flags_of(entry)}
            print(f"[study] {key} failed (exit code {code}); going on with the rest", flush=True)
        else:
            state[key] = {"status": "done", "seconds": round(seconds, 1), "trials": n, "budget": budget_of(entry),
                          "flags": flags_of(entry)}
            score = f"best {best[0]} {best[1]:.4f}" if best and best[1] is not None else "no finished trial"
            print(f"[study] {key} done in {hms(seconds)}: {n} trials, {score}", flush=True)
        write_state(results_dir, state)
    if ran or not (Path(results_dir) / "report.html").exists():
        for script in ("compare", "report"):
            if run_step(["-m", f"lyrics_cifar_search.analysis.{script}", "--results-dir", results_dir]) != 0:
                failed.append(script)
    print(f"[study] {len(searches)} searches, {ran} run now, in {hms(time.time() - start)}; report in "
          f"{Path(results_dir) / 'report.html'}", flush=True)
    if skipped:
        print(f"[study] skipped (their data cannot serve them): {', '.join(skipped)}", flush=True)
    if failed:
        print(f"[study] failed: {', '.join(failed)}; run the same command to retry them", flush=True)
        return 1
    return 0


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit code 2, like every other bad input
        raise StudyError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=invoked_as("study"), description=__doc__.split("\n\n")[0])
    p.add_argument("plan", nargs="?", default=str(DEFAULT_PLAN), help="a TOML plan (default: the earlier study)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, what is done and the time left; run nothing")
    p.add_argument("--only", metavar="GLOB", help="only the searches whose name matches, e.g. 'lyrics_*'")
    p.add_argument("--fresh", nargs="?", const="*", action="append", metavar="NAME",
                   help="discard what a search holds and run it again: every search of the plan, or those "
                   "named (a glob like --only; repeatable); put the plan before it")
    p.add_argument("--lyrics-data", help="--data of every lyrics search")
    p.add_argument("--test-data", help="--test-data of every lyrics search")
    p.add_argument("--images-data", help="--data of every CIFAR search")
    p.add_argument("--max-trials", type=positive_int, help="every search's --max-trials")
    p.add_argument("--epochs", type=positive_int, help="every Keras search's --epochs")
    p.add_argument("--time-budget", type=duration, metavar="D", help="every search's --time-budget (90s, 30m, 2h)")
    p.add_argument("--results-dir", default="results")
    console.add_flags(p)
    p.add_argument("--workers", type=positive_int, help="every search's --workers")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    parser, args = build_parser(), None
    try:
        args = parser.parse_args(argv)
        console.show(verbose=args.verbose, quiet=args.quiet)
        if args.time_budget is not None:
            args.time_budget = f"{args.time_budget:g}s"
        searches = apply_overrides(load_plan(args.plan), args)
        if args.only:
            searches = [e for e in searches if fnmatch.fnmatch(search_key(e), args.only)]
            if not searches:
                raise StudyError(f"--only {args.only!r} matches no search of the plan")
        mark_fresh(searches, args.fresh or [])
        if args.dry_run:
            dry_run(searches, read_state(args.results_dir), args.results_dir)
            return 0
        return run_study(searches, args)
    except StudyError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        again = " without --fresh" if args and args.fresh else ""  # the same command would discard them again
        print(f"\ninterrupted: finished searches are saved; run the same command{again} again to resume",
              file=sys.stderr)
        return 130


def entry_point() -> None:
    """`python runners/study.py` and its console script."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
