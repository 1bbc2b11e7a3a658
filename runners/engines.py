"""One engine interface: `run(family, prepared, out_dir, config)` runs a family's search, workers included.

Keras Tuner families go to runners/keras_search/, Optuna families to
runners/optuna_engine.py; both write the same trials.csv and best/. With
`config.workers > 1` the search is shared: Optuna workers share a study,
Keras Tuner workers ask a chief (this process) for trials.
"""

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from runners import record, trials_table
from runners.search_progress import Stop
from suite_common import UserError, atomic
from suite_common.process import child_env

# Who proposes the trials: "optuna", a study with a sampler (and for Keras a pruner: runners/keras_search/
# optuna_oracle.py), or for a Keras family Keras Tuner's own oracles. The first of each is the default.
TUNERS = {"keras_tuner": ("optuna", "random", "bayesian", "hyperband"), "optuna": ("optuna",)}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "successive-halving", "hyperband", "none")


@dataclass
class SearchConfig:
    """How a search runs (the command line's search flags)."""
    max_trials: int = 10
    epochs: Optional[int] = None  # Keras: max epochs per trial; None: the family's
    tuner: Optional[str] = None  # None: the engine's first in TUNERS
    seed: int = 42
    stop: Stop = field(default_factory=Stop)  # Ctrl-C and --time-budget: when the search stops
    tensorboard: Optional[str] = None
    workers: int = 1
    storage: Optional[str] = None  # Optuna: a shared database URL
    worker: bool = False  # this process is one of the workers another one started
    argv: Optional[list] = None  # the command line, for starting workers (default sys.argv[1:])
    verbose: bool = False  # a line per epoch of every Keras trial
    sampler: str = "tpe"  # --tuner optuna: the study's sampler
    pruner: str = "median"  # --tuner optuna (Keras): Optuna's pruner, or none


def keras_tuner_role():
    """'chief' or 'worker' when Keras Tuner's chief/worker variables are set, else None."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if not os.environ.get(v)]
    if missing:
        raise UserError(f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} not: set all three "
                        "(README, 'Scaling out'), or none for a search in this process")
    port = os.environ["KERASTUNER_ORACLE_PORT"]
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise UserError(f"KERASTUNER_ORACLE_PORT must be a port number from 1 to 65535, got {port!r}")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def start_workers(family, n, argv, stop, extra_args=(), env_of=lambda i: {}):
    """N copies of this command, one GPU each where CUDA_VISIBLE_DEVICES lists several."""
    child_argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--fresh"] + list(extra_args)
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    procs = []

    for i in range(n):
        # a worker holds no lock: it dies with this process (killed -9 or not), never runs on beside a re-run
        env = {**os.environ, **env_of(i), "SEARCH_SUITE_WORKER_INDEX": str(i), **child_env(signal.SIGKILL)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        procs.append(subprocess.Popen([sys.executable, "-m", "runners.search", *child_argv], env=env))
    stop.workers[:] = procs  # a SIGTERM to this process is passed on to them
    print(f"{family.name}: {n} workers started (processes {', '.join(str(p.pid) for p in procs)})", flush=True)
    return procs


def run_workers(family, prepared, out_dir, config, tuner):
    """Optuna with --workers N: prepare the study once, then N processes share it (one GPU each where GPUs
    exist)."""
    from runners import optuna_engine
    objective = trials_table.objective_of(family, prepared.meta)
    name = record.study_name(out_dir, prepared.record, config.storage)
    study = optuna_engine.prepare_study(family, out_dir, seed=config.seed, sampler=config.sampler, storage=config.storage,
                                        objective=objective, name=name)
    if config.storage:
        optuna_engine.enqueue_baseline(study, family)
    procs = start_workers(family, config.workers, config.argv, config.stop, ["--worker"])
    codes = [p.wait() for p in procs]
    if any(codes):
        print(f"worker exit codes: {codes}", file=sys.stderr, flush=True)
    if config.storage is None:
        # Every worker of this study has exited (the study is in this folder, which this process
        # holds): a trial still RUNNING belonged to a worker that died. This process re-queues it
        # and runs what is left, so the search ends with --max-trials finished trials.
        return optuna_engine.run(family, prepared, out_dir, max_trials=config.max_trials, seed=config.seed,
                                 sampler=config.sampler, quiet_if_done=True, stop=config.stop)
    study = optuna_engine.prepare_study(family, out_dir, seed=config.seed, sampler=config.sampler, storage=config.storage,
                                        shared=True, objective=objective, name=name)
    rows = record.rows(study)
    trials_table.write_trials_csv(out_dir, rows)
    return rows


def run_keras(family, prepared, out_dir, config, tuner, epochs, role):
    """A Keras Tuner search here, or as the chief of --workers N here or of workers elsewhere."""
    from runners import keras_search as keras_engine
    out_dir.mkdir(parents=True, exist_ok=True)

    def spawn(port):  # --workers N: N workers on loopback, their chief is this process
        return start_workers(family, config.workers, config.argv, config.stop, env_of=lambda i: {
            "KERASTUNER_TUNER_ID": f"worker{i}", "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port)})
    chief, local = None, config.workers > 1 and role != "chief"
    if role == "chief":  # workers on other machines connect to it
        chief = (os.environ["KERASTUNER_ORACLE_IP"], os.environ["KERASTUNER_ORACLE_PORT"])
    elif local:
        chief = ("127.0.0.1", 0)  # the system picks a free port
    return keras_engine.run(family, prepared, out_dir, max_trials=config.max_trials, epochs=epochs, tuner=tuner,
                            seed=config.seed, tensorboard=config.tensorboard, chief=chief,
                            start_workers=spawn if local else None, stop=config.stop, verbose=config.verbose,
                            sampler=config.sampler, pruner=config.pruner)


def run(family, prepared, out_dir, config):
    """Run (or resume) the family's search into out_dir; returns the trials.csv rows."""
    tuner = config.tuner or TUNERS[family.engine][0]
    epochs = config.epochs or family.epochs
    out_dir = Path(out_dir)
    if family.engine == "keras_tuner":
        from runners import keras_search as keras_engine
        role = keras_tuner_role()
        if role == "worker":  # the chief holds the lock and writes trials.csv
            keras_engine.run_worker(family, prepared, out_dir, epochs=epochs, tuner=tuner, seed=config.seed,
                                    tensorboard=config.tensorboard, verbose=config.verbose, sampler=config.sampler, pruner=config.pruner)
            print(f"{os.environ['KERASTUNER_TUNER_ID']} done", flush=True)
            return []
        rows = run_keras(family, prepared, out_dir, config, tuner, epochs, role)
    elif config.worker:  # one of several: the process that started it holds the lock
        from runners import optuna_engine
        optuna_engine.run(family, prepared, out_dir, max_trials=config.max_trials, seed=config.seed,
                          sampler=config.sampler, storage=config.storage, worker=True, stop=config.stop)
        print(f"worker {os.getpid()} done", flush=True)
        return []
    elif config.workers > 1:
        rows = run_workers(family, prepared, out_dir, config, tuner)
    else:
        from runners import optuna_engine
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = optuna_engine.run(family, prepared, out_dir, max_trials=config.max_trials, seed=config.seed,
                                 sampler=config.sampler, storage=config.storage, stop=config.stop)
    write_comparison_tables(family, prepared, out_dir)
    return rows


def write_comparison_tables(family, prepared, out_dir):
    """The family's own tables (e.g. best score per activation, loss, skip setting) beside trials.csv."""
    if family.comparison_tables is None or not (Path(out_dir) / "trials.csv").exists():
        return
    import pandas as pd
    trials = pd.read_csv(Path(out_dir) / "trials.csv")
    for name, table in family.comparison_tables(trials, *trials_table.objective_of(family, prepared.meta)).items():
        atomic.write_text(Path(out_dir) / f"{name}.csv", table.to_csv(index=False))
        print(f"{name}:\n{table.to_string(index=False)}", flush=True)
