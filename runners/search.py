#!/usr/bin/env python
"""Run (or resume) one family's hyperparameter search.

    python runners/search.py --list
    python runners/search.py lyrics_lstm --max-trials 20 --tuner hyperband
    python runners/search.py lyrics_tfidf_logreg --data train.csv --max-trials 50

From the command line to results/<family>/trials.csv:
  1. parse and check the flags (runners/search_flags.py; bad input: one line, exit code 2);
  2. find the family in the registry (search_spaces/);
  3. load and split the data for its task (runners/prepare.py, study_data/), cached;
  4. hand family + data to its engine (runners/engines.py: runners/keras_search/
     or runners/optuna_engine.py), which runs the trials and writes the results.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import functools
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Optional

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.runners import engines, prepare, shaping, trials_table
from lyrics_cifar_search.runners.engines import SAMPLERS, SearchConfig
# the flags and their checks (search_flags.py); named here too: runners/search.py is where a reader looks first
from lyrics_cifar_search.runners.search_flags import (build_parser, check_flags, data_options, pruner_of,
                                                      several_objectives)
from lyrics_cifar_search.runners.search_progress import Stop
from lyrics_cifar_search.runners.workers import keras_tuner_role
from lyrics_cifar_search.suite_common import (UserError, atomic, command, console, error_line, log, masked,
                                              process, provenance, write_error_line)
from lyrics_cifar_search.suite_common.atomic import linked
from lyrics_cifar_search.suite_common.process import die_with_parent, tune_this_process
from lyrics_cifar_search.suite_common.status import Status

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.prepare import Prepared
    from lyrics_cifar_search.runners.shaping import Shape
    from lyrics_cifar_search.search_spaces import Family


def print_families() -> None:
    rows = search_spaces.summaries()
    widths = [max(len(r[i]) for r in rows + [("family", "task", "engine", "")]) for i in range(3)]
    print(f"{'family':<{widths[0]}}  {'task':<{widths[1]}}  {'engine':<{widths[2]}}  description")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}")


def check_resume(out_dir: Path, record: dict[str, Any]) -> None:
    """Refuse to add trials to a search made on other data or options (nothing is touched)."""
    previous = trials_table.run_record(out_dir)
    if not previous:
        return
    # "baseline" is recorded only when --no-baseline turned it off: every other search ran its baseline first
    # and "objectives" only for a Pareto search
    defaults = {"baseline": True, "shape": {}, "objectives": None, "artifact_store": None}  # recorded when given
    previous, record = {**defaults, **previous}, {**defaults, **record}
    if previous.get("tuner") in SAMPLERS and not {"sampler", "epochs"} & set(previous):
        # an Optuna family's search recorded before --sampler, when --tuner named its sampler: the same search
        previous = {**previous, "tuner": "optuna", "sampler": previous["tuner"]}
    changed = []
    for key, label in prepare.RESUME_GUARD.items():
        if key in prepare.RECORDED_LATER and key not in previous:
            continue
        if key in record and previous.get(key) != record[key]:
            was, now = previous.get(key), record[key]
            if key == "data_bytes":
                was, now = f"{previous.get('data')} ({was})", f"{record.get('data')} ({now})"
            elif key == "test_data_bytes":
                was, now = f"{previous.get('test_data')} ({was})", f"{record.get('test_data')} ({now})"
            elif key == "objectives":
                was, now = (",".join(o[0] for o in v) if v else "one objective" for v in (was, now))
            changed.append(f"{label}: was {was}, now {now}")
    if changed:
        raise UserError(f"{out_dir} holds a search made with other data or options ({'; '.join(changed)}); "
                        "re-run it with the same flags to resume, or add --fresh to discard it and start again "
                        "(or use another --results-dir)")


def write_record(out_dir: Path, record: dict[str, Any], finished_run: Optional[dict[str, Any]] = None) -> None:
    """search.json: what the search runs on, and every run of it that ended (when, command, versions,
    machine). Before a run it is rewritten with the same bytes when nothing changed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = trials_table.run_record(out_dir)
    runs = previous.get("runs", []) + ([finished_run] if finished_run else [])
    # the last summary's verdict stays until the next summary replaces it (search_summary.save_verdict)
    kept = {"verdict": previous["verdict"]} if "verdict" in previous else {}
    atomic.write_text(out_dir / trials_table.RUN_RECORD, json.dumps({**record, "runs": runs, **kept}, indent=2))


def hold_lock(out_dir: Path) -> IO[str]:
    """One search per results folder at a time: a second one is refused, not interleaved."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    path = out_dir.parent / f".{out_dir.name}.lock"
    try:  # never through a link: a planted symlink must not make us write elsewhere
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError:
        if path.is_symlink():
            raise UserError(f"the lock file {path} is a symbolic link; remove it (the suite creates its own)") from None
        raise
    f = os.fdopen(fd, "r+")
    if os.fstat(fd).st_nlink > 1:  # a hard link: truncating it below would empty the other name's file
        f.close()
        raise UserError(f"the lock file {path} is a file with other hard links; remove it (the suite creates its own)")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise UserError(f"another search is running on {out_dir} (process {pid}); wait for it to finish, "
                        "or give this one another --results-dir") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def main(argv: Optional[list[str]] = None, stop: Optional[Stop] = None) -> int:
    """stop: the run's search_progress.Stop (cli() makes it; Ctrl-C and SIGTERM request it)."""
    args = build_parser().parse_args(argv)
    console.show(verbose=args.verbose, quiet=args.quiet)  # what the code below logs reaches the console
    ran = run_search(args, stop, argv)
    if ran is not None:
        family, rows, out_dir, stop = ran
        say_how_it_ended(family, rows, out_dir, args, stop)
    return 0


def run_search(args: argparse.Namespace, stop: Optional[Stop] = None,
               argv: Optional[list[str]] = None) -> Optional[tuple[Family, list[dict], Path, Stop]]:
    """The search the parsed flags ask for (the command line's, or the Python API's: runners/api.py), printing
    nothing but through logging; returns (family, trials.csv's rows, results folder, stop), or None when there
    is nothing to summarise (--list, --describe, a worker). Bad input: UserError, before anything is written."""
    stop = stop or Stop()
    load_families(args)
    if args.list:
        print_families()
        return None
    # What its source declares: flags and data are checked without starting Keras or TensorFlow
    family = named_family(args)
    shape = shaping.Shape.from_flags(args.set, args.range, args.choices, args.enqueue)
    if shape:  # checked against the family's space (built, not trained) before anything is read or written
        shaping.check(shape, family, shaping.family_space(search_spaces.get_family(args.family), args.with_artist),
                      baseline=not args.no_baseline)
    if args.describe:  # like Keras Tuner's search_space_summary(): no data read, nothing written
        from lyrics_cifar_search.runners import space_summary  # Keras Tuner: only for --describe
        print("\n".join(space_summary.summary(search_spaces.get_family(args.family), args.with_artist, shape)))
        return None
    tuner = check_flags(args, family)
    role = keras_tuner_role() if family.engine == "keras_tuner" else None  # bad KERASTUNER_* variables: now
    if args.artifact_store and tuner == "optuna":  # a store that cannot take a model: one line, before anything
        from lyrics_cifar_search.runners import model_store  # Optuna: imported once a search runs
        model_store.open_store(args.artifact_store, args.results_dir, args.keep_models).check()
    out_dir = results_folder(args, family)

    # The data is loaded and checked before anything under results/ changes (its cache is written once the
    # resume guard has accepted it).
    worker = role == "worker" or args.worker
    if not worker:
        refuse_links(out_dir)
    prepared = prepare.prepare(family, data_options(args))
    record_what_a_trial_means(prepared, family, args, tuner, shape)
    config = SearchConfig(max_trials=args.max_trials, epochs=args.epochs, tuner=tuner, seed=args.seed, stop=stop,
                          tensorboard=args.tensorboard, workers=args.workers,
                          storage=args.storage, worker=args.worker, argv=argv, verbose=args.verbose,
                          sampler=args.sampler or SAMPLERS[0], pruner=pruner_of(args),
                          time_budget=args.time_budget, baseline=not args.no_baseline, shape=shape,
                          keep_models=args.keep_models, artifact_store=args.artifact_store)
    if several_objectives(args) and family.engine == "keras_tuner" and not worker:
        log(f"{family.name}: {args.objective}: several objectives, so no pruning (Optuna cannot prune them): "
            "every trial trains to its last epoch")
    family = search_spaces.get_family(args.family)  # the hypermodel or estimator: Keras starts here
    # --time-budget counts from here, once the data is ready and the framework loaded (a budget shorter than
    # Keras's import would otherwise end a search before its first trial): no trial starts after it
    stop.deadline, stop.hard = (time.time() + args.time_budget if args.time_budget else None), args.time_budget_hard
    if worker:  # one of several: the process that started the search holds the lock
        prepare.save_cache(prepared)
        engines.run(family, prepared, out_dir, config)
        return None
    return family, run_in_folder(family, prepared, out_dir, config, args), out_dir, stop


def load_families(args: argparse.Namespace) -> None:
    """The registry's families and the user's own (--families-from, also passed on to workers and the analysis
    through their environment)."""
    if args.time_budget_hard and not args.time_budget:
        raise UserError("--time-budget-hard needs --time-budget D")
    if args.families_from:  # so that workers and the analysis (its environment) find them too
        os.environ[search_spaces.FAMILIES_ENV] = os.pathsep.join(
            [x for x in os.environ.get(search_spaces.FAMILIES_ENV, "").split(os.pathsep) if x]
            + [str(Path(f).resolve()) if f.endswith(".py") else f for f in args.families_from])
    search_spaces.load_user_families()


def named_family(args: argparse.Namespace) -> Family:
    """The family the flags name, as its source declares it (nothing imported); args.family is made its name."""
    if not args.family:
        raise UserError(f"name a family to search, e.g. `{command('search')} lyrics_lstm`; "
                        "`--list` shows them all")
    args.family = search_spaces.canonical_name(args.family)  # any case: LYRICS_LSTM is lyrics_lstm
    return search_spaces.describe(args.family)


def results_folder(args: argparse.Namespace, family: Family) -> Path:
    """results/<family>[_artist]/: where the search the flags ask for keeps its trials."""
    return Path(args.results_dir) / (family.name + ("_artist" if args.with_artist else ""))


def refusal(argv: list[str]) -> Optional[str]:
    """Why `search.py ARGV` would stop before its first trial, or None: its flags, and, where its results folder
    holds a search already, its data and the resume guard (check_resume). Nothing is written; Keras is not
    started, nothing is said (the data's notices are the run's). The study's dry run asks this of every search
    it would run."""
    logger = logging.getLogger(console.ROOT)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        args = build_parser().parse_args(argv)
        load_families(args)
        family = named_family(args)
        shape = shaping.Shape.from_flags(args.set, args.range, args.choices, args.enqueue)
        tuner = check_flags(args, family)
        out_dir = results_folder(args, family)
        if args.fresh or not trials_table.run_record(out_dir):
            return None  # nothing to resume; its data is read when it runs
        prepared = prepare.prepare(family, data_options(args))
        record_what_a_trial_means(prepared, family, args, tuner, shape)
        check_resume(out_dir, prepared.record)
    except UserError as e:
        return str(e)
    finally:
        logger.setLevel(level)
    return None


def record_what_a_trial_means(prepared: Prepared, family: Family, args: argparse.Namespace, tuner: Optional[str],
                              shape: Optional[Shape] = None) -> None:
    """Into the search's run record: the tuner or sampler that proposes a trial, its epoch budget and the space's
    shaping (a resume may not mix them), and the run's provenance."""
    if shape:  # recorded only when given: a shared study's name hashes the record
        prepared.record["shape"] = shape.record()
    if tuner == "optuna":
        prepared.record["sampler"] = args.sampler or SAMPLERS[0]
        if family.engine == "keras_tuner":  # what a trial means: how far it may be trained
            prepared.record["pruner"] = pruner_of(args)
    if args.no_baseline:  # recorded only when off: a shared study's name hashes the record, and must not move
        prepared.record["baseline"] = False
    if args.artifact_store:  # where the kept models are: a resume may not scatter them (not in a study's name)
        prepared.record["artifact_store"] = args.artifact_store if args.artifact_store.startswith("s3://") \
            else str(Path(args.artifact_store).expanduser().resolve())
    prepared.record.update(tuner=tuner, **({"epochs": args.epochs or getattr(family, "epochs", None)}
                                           if family.engine == "keras_tuner" else {"storage": masked(args.storage)
                                                                                   if args.storage else None}))
    prepared.meta["provenance"] = provenance.provenance(
        process.backend_keras_will_load() if family.engine == "keras_tuner" else None)


def run_in_folder(family: Family, prepared: Prepared, out_dir: Path, config: SearchConfig,
                  args: argparse.Namespace) -> list[dict]:
    """The search in its results folder, under the folder's lock: the resume guard, --fresh, the record's
    checks, then the engine; returns trials.csv's rows."""
    lock = hold_lock(out_dir)
    try:
        if not args.fresh:
            check_resume(out_dir, prepared.record)
        from lyrics_cifar_search.runners import record  # Optuna: imported once a search runs
        if args.storage:  # the study there belongs to this results folder (--fresh: deleted and made anew)
            record.claim_study(args.storage, record.study_name(out_dir, prepared.record, args.storage),
                               out_dir, trials_table.objectives_of(family, prepared.meta), fresh=args.fresh)
        if args.fresh:
            if out_dir.exists():
                print(f"--fresh: discarding the previous search in {out_dir}", flush=True)
                shutil.rmtree(out_dir)
            record.discard(out_dir)
        failed_before = _all_failed(out_dir) if not args.fresh else None
        if failed_before:
            log(f"note: all {failed_before} trials on record failed; this resume tries the same configurations "
                "again: fix the cause, then start over with --fresh")
        # the record outlives the folder: its study must hold this search's trials (deleted folder, other data)
        record.check_search_study(out_dir, prepared.meta, args.storage, prepared.record,
                                  **engines.study_settings(family, config))
        prepare.save_cache(prepared)
        write_record(out_dir, prepared.record)
        rows = engines.run(family, prepared, out_dir, config)
        write_record(out_dir, prepared.record, {**prepared.meta["provenance"], "ended_at": provenance.now()})
    finally:
        lock.close()  # releases the lock (the OS releases it too if the process dies)
    return rows


def say_how_it_ended(family: Family, rows: list[dict], out_dir: Path, args: argparse.Namespace, stop: Stop) -> None:
    """A time budget that ended the search early, then what it found: the best trial beside the baseline, the
    best model on the test split, what to run next."""
    ended = [r for r in rows if r["status"] in (Status.COMPLETE, Status.FAIL)]
    if stop.out_of_time() and not stop.requested and len(ended) < args.max_trials:
        print(f"{family.name}: the time budget ({args.time_budget:g} s) ended the search after "
              f"{len(ended)} of {args.max_trials} trials; run the same command again to "
              "continue it (a larger --time-budget or --max-trials goes further)", flush=True)
    from lyrics_cifar_search.runners.search_summary import summary_lines  # pandas: only once a search has ended
    print("\n".join(summary_lines(family, out_dir, args.results_dir, args.tensorboard)), flush=True)


def _all_failed(out_dir):
    """How many trials trials.csv holds if every one of them failed (0 otherwise, or without a table)."""
    try:
        with open(Path(out_dir) / "trials.csv", newline="") as f:
            statuses = [row.get("status") for row in csv.DictReader(f)]
    except (OSError, csv.Error, UnicodeDecodeError):
        return 0
    return len(statuses) if statuses and all(s == Status.FAIL for s in statuses) else 0


def refuse_links(out_dir: Path) -> None:
    """Results are written in place (SQLite databases, lock files, Keras Tuner's files) and replaced: a symbolic
    link or a hard-linked file among them would let a write reach what it points to outside, so every one is
    refused up front, with one line naming it: the search folder and everything in it, and the results
    folder's lock, study database (the record), data cache and model store."""
    results = out_dir.parent
    # (the default model store, results/artifacts: its files are written by rename, so the folder alone)
    places = [out_dir, results / f".{out_dir.name}.lock", results / "optuna.db", results / "_cache",
              results / "artifacts"]
    if (results / "_cache").is_dir() and not (results / "_cache").is_symlink():
        places += sorted((results / "_cache").iterdir())
    if out_dir.is_dir() and not out_dir.is_symlink():
        places += sorted(out_dir.rglob("*"))  # symbolic links to folders are listed, not followed
    for path in places:
        why = linked(path)
        if why:
            raise UserError(f"{path} is {why}; the suite writes there, so it would change what the link reaches: "
                            "remove it (what it points to is left alone) or use another --results-dir")


def _on_ctrl_c(stop, signum, frame):
    """Ctrl-C, and SIGTERM alike: stop after the trial in progress; a second one stops at once. A SIGTERM is
    passed on to this process's workers (Ctrl-C reaches them from the terminal)."""
    if signum == signal.SIGTERM:
        for child in stop.workers:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
    if stop.requested:
        raise KeyboardInterrupt  # a second one: stop now (the trial in progress runs again on resume)
    stop.request()
    what = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    print(f"\n{what}: stopping after the trial in progress (again to stop at once)", file=sys.stderr, flush=True)


def cli(argv: Optional[list[str]] = None, handle_signals: bool = False) -> int:
    """The command: exit code 0, 2 (bad input: one line) or 130 (stopped). handle_signals: Ctrl-C and SIGTERM
    stop the search after the trial in progress (the console script's and `python runners/search.py`'s)."""
    stop = Stop()
    if handle_signals:
        signal.signal(signal.SIGINT, functools.partial(_on_ctrl_c, stop))
        signal.signal(signal.SIGTERM, functools.partial(_on_ctrl_c, stop))
    try:
        code = main(argv, stop)
        if stop.requested:
            raise KeyboardInterrupt
        return code
    except UserError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full results folder, say
        print(write_error_line(e) + " to resume", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are saved; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the record's database refusing a write is one line, not a traceback
        from lyrics_cifar_search.runners import record  # Optuna: only once a search ran
        problem = record.storage_problem(e)
        if problem is None:
            raise
        print(error_line(record.storage_error_line(problem)), file=sys.stderr)
        return 2


def entry_point() -> None:
    """`python runners/search.py` and the `lyrics-search` console script."""
    die_with_parent()  # a worker or a study's search started with child_env
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    sys.exit(cli(handle_signals=True))


if __name__ == "__main__":
    entry_point()
