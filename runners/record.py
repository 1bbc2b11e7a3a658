"""The search's record: one Optuna study per search, where every trial of every family lives.

    results/optuna.db       (or the --storage URL)
        study "<folder>"    lyrics_lstm, lyrics_lstm_artist, lyrics_tfidf_logreg, ...
                            (in a shared --storage: "<folder>-<hash of what its trials mean>")

    optuna-dashboard sqlite:///results/optuna.db

Each trial there has its parameters with their real distributions (a log-scale
float stays log-scale, an int an int, a choice categorical), its state
(COMPLETE, PRUNED, FAIL, RUNNING), start and end times, its learning curve
(each epoch's objective, Keras families), every metric as a user attribute,
`trial_id` (the id of histories/, best/ and the trial lines) and `is_baseline`.
trials.csv, the comparison tables and the report are written from it.

Who writes it:
- Optuna families, and Keras families under the study-backed oracle (the
  default, runners/keras_search/optuna_oracle.py): the study proposes each
  trial (ask) and is told its end (tell), so trials arrive as they run.
- Keras Tuner's own oracles (--tuner random|bayesian|hyperband): each trial as
  it ends, with its values, times and learning curve (oracles.RecordedInStudy).
  Keras Tuner's own state (keras_tuner/) is what such a search resumes from.

A trial cut short by a kill is marked `interrupted` (cut_short): it runs again, out of the tables.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any, Collection, Literal, Optional, Sequence

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from lyrics_cifar_search.runners import compat, trials_table
from lyrics_cifar_search.suite_common import UserError, masked
from lyrics_cifar_search.suite_common.status import Status

# user attributes that are not metrics of the trial
BOOKKEEPING = {"trial_id", "is_baseline", "error", "interrupted", "keras_tuner_trial_id", "epochs_budget", "duplicate",
               "objective_se", "replaced", "model_artifact"}
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)


def storage_url(results_dir: str | Path) -> str:
    """The results folder's own storage (SQLite), which every search in it shares."""
    return f"sqlite:///{Path(results_dir).resolve() / 'optuna.db'}"


def study_name(out_dir: str | Path, record: dict | None = None, storage: str | None = None) -> str:
    """The search's study: named like its results folder; in a shared --storage, with a hash of what its trials
    mean (data fingerprint, options, objective, seed, sampler), so another search never resumes it."""
    if storage is None:
        return Path(out_dir).name
    # contents, not paths: workers on other machines read the same data from other places
    identity = {k: v for k, v in (record or {}).items()
                if k not in ("storage", "data", "test_data", "embeddings", "artifact_store", "rows_dropped",
                             "artist_coverage")}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{Path(out_dir).name}-{digest}"


def open_storage(out_dir: str | Path | None, url: str | None = None, heartbeat: bool = True) -> optuna.storages.BaseStorage:
    """The search's storage: results/optuna.db by default, or a database URL shared by workers (e.g.
    postgresql://...). heartbeat: Optuna's study.optimize sends them; a worker that dies leaves a trial whose
    heartbeat stops, and the next worker to start a trial marks it FAIL and queues its parameters again
    (a study used through ask and tell sends none: Optuna warns if asked to)."""
    if url is None:
        if out_dir is None:
            raise ValueError("open_storage: give the results folder or a URL")
        url = storage_url(Path(out_dir).parent)
    url = _with_installed_driver(url)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # outside the try below: a missing name (an Optuna older than setup.cfg's 4.9) is not a storage fault
    with warnings.catch_warnings():  # marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3) if heartbeat else None
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if not heartbeat:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=trials_table.HEARTBEAT_S,
                grace_period=3 * trials_table.HEARTBEAT_S, heartbeat_stale_trial_callback=retry)
    except Exception as e:
        raise UserError(masked(f"cannot open the study storage {url!r} ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''})")) from None


def _with_installed_driver(url):
    """postgresql://... with the PostgreSQL driver that is installed: SQLAlchemy's default for that scheme is
    psycopg2, while the suite's `postgres` extra installs psycopg (3)."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def storage_problem(e: BaseException | None) -> BaseException | None:
    """The database error behind an exception (a full disk, a read-only or immutable file, a size limit), or None."""
    import sqlalchemy.exc  # only with a database URL
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError)):
            return e
        e = e.__cause__ or e.__context__
    return None


def storage_error_line(problem: BaseException, url: str | None = None) -> str:
    """One line for a database the record cannot be written to (storage_problem's error)."""
    root = problem
    while (deeper := root.__cause__ or root.__context__) is not None:
        root = deeper
    why = (str(root).splitlines() or [type(root).__name__])[0]
    where = f" {url}" if url else ""
    return masked(f"cannot write the study's database{where} ({why}): free space or fix its permissions, then "
                  "run the same command again to resume (the finished trials are saved)")


def has_study(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        return name in optuna.get_all_study_names(storage=storage)
    except Exception:
        return False


def trials_on_record(storage: optuna.storages.BaseStorage, name: str) -> int:
    """How many trials the study `name` holds (0 when there is none yet): what a resumed sampler's seed adds."""
    return len(storage.get_all_trials(storage.get_study_id_from_name(name))) if has_study(storage, name) else 0


def direction(objective_direction: str) -> Literal["minimize", "maximize"]:
    """Optuna's word for an objective's direction ("max" or "min")."""
    return "minimize" if objective_direction == "min" else "maximize"


# What a study's trials mean: a study holding trials of another search (other data, family, budget, tuner...) is
# never added to (check_identity)
IDENTITY = ("family", "variant", "data_fingerprint", "seed", "objective", "engine", "epochs", "tuner", "sampler",
            "pruner", "baseline")


def objective_names(meta: dict) -> list[str]:
    """The search's objectives' names: ["val_accuracy"], or a Pareto search's ["val_accuracy", "params", ...]."""
    return [o[0] for o in meta.get("objectives") or [meta.get("objective") or trials_table.OBJECTIVE]]


def directions(objectives: Sequence[tuple[str, str]]) -> list[Literal["minimize", "maximize"]]:
    """Optuna's directions of [(metric, "max"|"min"), ...]: what a study of one or several objectives is made with."""
    return [direction(d) for _, d in objectives]


def _identity(meta, settings):
    objective = ",".join(objective_names(meta))  # one name, or a Pareto search's names
    data = meta.get("data") or {}
    return {"family": meta.get("family"), "variant": meta.get("variant"), "data_source": data.get("source"),
            "data_fingerprint": data.get("fingerprint"), "seed": meta.get("seed"), "objective": objective,
            "engine": meta.get("engine"), "epochs": meta.get("epochs"), **settings}


def check_identity(study: optuna.Study, meta: dict, **settings) -> None:
    """Before any trial is added: a study that holds trials belongs to this search (its family, variant, data
    fingerprint, seed, objective, epoch budget, tuner, sampler and pruner, as describe() wrote them), whatever
    happened to the results folder (deleted by hand, a --fresh killed half-way, a --worker run on other data).
    A study with trials that no search of the suite described (made by plain Optuna, say) is refused too.
    UserError, one line; nothing is written."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING]
    if not trials:
        return
    attrs, wanted = study.user_attrs, _identity(meta, settings)
    where = f"the study {study.study_name!r} in the record"
    if not attrs.get("family") or "data_fingerprint" not in attrs:
        raise UserError(f"{where} holds {len(trials)} trials that no search of this suite made (it names no family "
                        "and data): start again with --fresh to discard it, or give this search another --storage")
    for key in IDENTITY:
        if key in attrs and key in wanted and wanted[key] is not None and attrs[key] != wanted[key]:
            raise UserError(f"{where} holds {len(trials)} trials of another search ({key}: {attrs[key]!r} there, "
                            f"{wanted[key]!r} now): start again with --fresh to discard them, or use another "
                            "--results-dir")


def check_search_study(out_dir: str | Path, meta: dict, url: str | None = None, run_record: dict | None = None,
                       **settings) -> None:
    """The CLI's check, before it writes anything (the engines check again as they open the study): the search's
    study, if the record holds one already, holds this search's trials (check_identity)."""
    if url is None and not (Path(out_dir).parent / "optuna.db").exists():
        return
    storage = open_storage(out_dir, url, heartbeat=False)
    name = study_name(out_dir, run_record, url)
    if has_study(storage, name):
        check_identity(optuna.load_study(study_name=name, storage=storage), meta, **settings)


def describe(study: optuna.Study, meta: dict, **settings) -> None:
    """The study's attributes: which data, seed, objective and engine its trials ran on (checked first:
    check_identity), and the objective's name for the dashboard."""
    check_identity(study, meta, **settings)
    names = objective_names(meta)
    attrs = study.user_attrs
    if settings.get("sampler") == "tpe-prior" and "prior" not in attrs and not legacy_prior(
            compat.storage_of(study), study.study_name):  # a new search: piBO (policy.PriorTPE)
        study.set_user_attr("prior", "pibo")
    for key, value in _identity(meta, settings).items():
        if attrs.get(key) != value:
            study.set_user_attr(key, value)
    if study.metric_names != names:
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)


def discard(out_dir: str | Path) -> None:
    """--fresh: the search's study in results/optuna.db goes with its folder."""
    out_dir = Path(out_dir)
    if not (out_dir.parent / "optuna.db").exists():
        return
    try:
        optuna.delete_study(study_name=out_dir.name, storage=open_storage(out_dir))
    except KeyError:  # no study of this search there
        pass


def keras_distribution(hp: Any, for_sampling: bool = True) -> Optional[optuna.distributions.BaseDistribution]:
    """The Optuna distribution of a Keras Tuner hyperparameter, on Keras Tuner's own grid.

    A log-scale Int or Float with a step is a geometric grid in Keras Tuner (Int(8, 256, step=2,
    sampling="log"): 8, 16, ..., 256), which no Optuna numeric distribution holds: it becomes a categorical
    of that grid. for_sampling=False (recording a value Keras Tuner's own oracle chose): a reverse-log range
    is recorded as a plain range. Anything Optuna cannot sample is refused with one line (UserError), never
    left at its default without a word."""
    d = optuna.distributions
    kind = type(hp).__name__
    if kind in ("Float", "Int"):
        if hp.sampling in ("log", "reverse_log") and hp.step is not None:
            grid = [int(v) if kind == "Int" else float(v) for v in hp.values]
            return d.CategoricalDistribution(grid)
        if hp.sampling == "reverse_log" and for_sampling:
            raise UserError(f"hyperparameter {hp.name!r}: sampling='reverse_log' without a step has no Optuna "
                            "distribution; give it a step, use 'log' or 'linear', or search with --tuner random")
        log = hp.sampling == "log"
        if kind == "Float":
            return d.FloatDistribution(hp.min_value, hp.max_value, log=log, step=None if log else hp.step)
        return d.IntDistribution(hp.min_value, hp.max_value, log=log, step=1 if log else (hp.step or 1))
    if kind == "Choice":
        return d.CategoricalDistribution(list(hp.values))
    if kind == "Boolean":
        return d.CategoricalDistribution([False, True])
    if kind == "Fixed":
        return d.CategoricalDistribution([hp.value])
    if for_sampling:
        raise UserError(f"hyperparameter {hp.name!r} is a {kind}, which the Optuna study cannot sample; use "
                        "Int, Float, Choice, Boolean or Fixed, or search with --tuner random")
    return None


def optuna_names(space: Sequence[Any]) -> dict[int, str]:
    """The study's name for each hyperparameter of a Keras Tuner space ({id(hp): name}): its own name, or,
    where two of one name under different conditions have different distributions (which one Optuna
    parameter cannot hold), the name with its condition ("units|layers=2,3")."""
    by_name: dict[str, list] = {}
    for hp in space:
        by_name.setdefault(hp.name, []).append(hp)
    names = {}
    for name, hps in by_name.items():
        kinds = {repr(keras_distribution(hp, for_sampling=False)) for hp in hps}
        for hp in hps:
            scoped = len(kinds) > 1 and hp.conditions
            names[id(hp)] = name + "|" + ";".join(
                f"{c.name}={','.join(map(str, c.values))}" for c in hp.conditions) if scoped else name
    return names


def add_ended(study: optuna.Study, *, trial_id: int, state: Status, params: dict, distributions: dict,
              value: float | None, attrs: dict, curve: dict[int, float], start: float, end: float) -> None:
    """A trial that ran elsewhere (a Keras Tuner oracle's) into the study, as it ended: state a Status
    (COMPLETE, PRUNED or FAIL); curve {epoch: objective}; start, end: time.time() values."""
    kept = {k: v for k, v in params.items() if k in distributions and v is not None
            and compat.in_distribution(distributions[k], v)}
    finite = state == Status.COMPLETE and trials_table.is_score(value)
    state = Status.FAIL if state == Status.COMPLETE and not finite else Status(state)
    # A FrozenTrial, not optuna.trial.create_trial: create_trial stamps start and end "now", and the
    # dashboard's timeline shows each trial's real duration.
    study.add_trial(optuna.trial.FrozenTrial(
        number=-1, trial_id=-1, state=optuna.trial.TrialState[state.value], value=float(value) if finite and value is not None else None,
        datetime_start=datetime.datetime.fromtimestamp(start), datetime_complete=datetime.datetime.fromtimestamp(end),
        params=kept, distributions={k: distributions[k] for k in kept},
        user_attrs={"trial_id": int(trial_id), **{k: v for k, v in attrs.items() if v is not None}},
        system_attrs={}, intermediate_values={int(k): float(v) for k, v in curve.items()
                                              if trials_table.is_score(v)}))


def retried(study: optuna.Study) -> set[int]:
    """Numbers of trials cut short by a dead worker and queued again (by the heartbeat callback)."""
    with warnings.catch_warnings():  # marked experimental since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        numbers = [RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in study.get_trials(deepcopy=False)]
    return {n for n in numbers if n is not None}


def interrupted(t: optuna.trial.FrozenTrial, retried_numbers: Collection[int] = frozenset()) -> bool:
    """A study trial that is not one of the search's trials: an attempt cut short by a kill (it ran again), or a
    proposal never trained: already tried (`duplicate`, the collision rule), or replaced by an oracle subclass's
    own values (`replaced`, optuna_oracle)."""
    return bool(t.user_attrs.get("interrupted") or t.user_attrs.get("duplicate") or t.user_attrs.get("replaced")) \
        or t.number in retried_numbers


def cut_short(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """Trial `number`'s attempt will not end (killed, or its worker silent): FAIL, marked interrupted (out of the
    tables and counts); returned as recorded. Both engines run its values again as a new trial, one number per
    attempt: Keras Tuner's retry (keras_search/optuna_oracle.py), Optuna's retry callback (optuna_queue.run_again)."""
    storage = compat.storage_of(study)
    key = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    storage.set_trial_user_attr(key, "interrupted", True)
    study.tell(number, state=optuna.trial.TrialState.FAIL)
    return storage.get_trial(key)


def trial_id(t: optuna.trial.FrozenTrial) -> int:
    """The suite's id of a study trial: its own number, or the id its Keras Tuner trial had."""
    return int(t.user_attrs.get("trial_id", t.number))


def rows(study: optuna.Study) -> list[dict]:
    """trials.csv's rows, one per trial, in trial id order; attempts cut short by a kill (they ran again) are
    left out, and so are trials only queued."""
    out, skip = [], retried(study)
    # a Pareto search (several objectives): its rows say which trials are on the front (no other trial is at
    # least as good in every objective and better in one)
    front = {t.number for t in study.best_trials} if len(study.directions) > 1 else None
    for t in study.get_trials(deepcopy=False):
        if interrupted(t, skip) or t.state == optuna.trial.TrialState.WAITING:
            continue
        attrs = t.user_attrs
        metrics = {k: v for k, v in attrs.items() if k not in BOOKKEEPING}
        params = dict(t.params)
        if "epochs_budget" in attrs:  # Hyperband's budget for this trial
            params["epochs_budget"] = attrs["epochs_budget"]
        out.append(trials_table.trial_row(trial_id(t), t.state.name, attrs.get("is_baseline", False), params,
                                          metrics, attrs.get("error", "")))
        if front is not None:
            out[-1]["pareto"] = t.number in front
    return sorted(out, key=lambda r: r["trial_id"])


def write_table(study: optuna.Study, out_dir: str | Path) -> list[dict]:
    """trials.csv rewritten from the study: the one way a search's table is written, by either engine, after
    each trial and on a resume. Returns its rows (dicts, trial id order)."""
    table = rows(study)
    trials_table.write_trials_csv(out_dir, table)
    return table


def legacy_prior(storage, name) -> bool:
    """Whether the study `name` holds trials of a search made with the first --sampler tpe-prior (the mixture,
    policy.NearDefaults, before piBO): it names that sampler and no prior. Such a search resumes with it."""
    if not has_study(storage, name):
        return False
    study_id = storage.get_study_id_from_name(name)
    attrs = storage.get_study_user_attrs(study_id)
    return attrs.get("sampler") == "tpe-prior" and "prior" not in attrs and bool(storage.get_all_trials(study_id))


def claim_study(url: str, name: str, out_dir: str | Path, objectives: list, fresh: bool = False) -> None:
    """Before anything is written: the study `name` in the shared storage belongs to this results folder (it is
    created and marked so if new). Another folder's study of the same name is refused with one line; with
    --fresh this folder's is deleted first."""
    storage = open_storage(out_dir, url)
    folder = str(Path(out_dir).resolve())
    if has_study(storage, name):
        owner = storage.get_study_user_attrs(storage.get_study_id_from_name(name)).get("results_folder")
        if owner not in (None, folder):
            raise UserError(f"the study {name!r} in {masked(url)} belongs to the search in {owner}: run it from "
                            "there, or give this search another --storage")
        if fresh:
            optuna.delete_study(study_name=name, storage=storage)
    if not has_study(storage, name):
        study_id = storage.create_new_study([optuna.study.StudyDirection[d.upper()] for d in directions(objectives)],
                                            name)
        storage.set_study_user_attr(study_id, "results_folder", folder)


def move_own_study(out_dir: Path, family_name: str, storage: optuna.storages.BaseStorage, name: str) -> None:
    """A search made before the one record kept its study in its folder's own optuna.db: moved, once, into
    results/optuna.db, so it resumes there."""
    own = Path(out_dir) / "optuna.db"
    if not own.is_file() or has_study(storage, name):
        return
    optuna.copy_study(from_study_name=family_name, from_storage=f"sqlite:///{own.resolve()}", to_storage=storage,
                      to_study_name=name)
    own.unlink()
