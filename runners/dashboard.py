"""One optuna-dashboard for every family: each search's trials mirrored into <results-dir>/optuna.db.

    optuna-dashboard sqlite:///results/optuna.db

Each search (family, and `_artist` for the lyrics+artist variant) is one Optuna
study there, named like its results folder. Keras Tuner trials arrive with
their hyperparameters as Optuna distributions (a log-scale float stays
log-scale, an int an int, a choice categorical), their objective value, every
metric as a user attribute, and the suite's trial id; scikit-learn trials with
the distributions their own study drew them from. The study's attributes say
which data, seed and objective it ran on. The mirror is written by the process
that writes trials.csv, after it, and is only for reading: a search resumes
from its own state (keras_tuner/, or the family's own optuna.db).
"""

import math
import warnings
from pathlib import Path

STATES = {"COMPLETE": "COMPLETE", "FAIL": "FAIL", "PRUNED": "PRUNED"}
_storages = {}


def storage_url(results_dir):
    return f"sqlite:///{Path(results_dir).resolve() / 'optuna.db'}"


def discard(out_dir):
    """--fresh: the dashboard's copy of the search goes with it (else the new trials would join the old ones
    under the same ids)."""
    out_dir = Path(out_dir)
    if not (out_dir.parent / "optuna.db").exists():
        return
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage_url(out_dir.parent)
    try:
        optuna.delete_study(study_name=out_dir.name, storage=url)
    except KeyError:  # no copy of this search there
        pass
    _storages.pop(url, None)


def keras_distribution(hp):
    """The Optuna distribution of a Keras Tuner hyperparameter (None for one Optuna cannot hold)."""
    import optuna.distributions as d
    kind = type(hp).__name__
    if kind == "Float":
        log = hp.sampling == "log"
        return d.FloatDistribution(hp.min_value, hp.max_value, log=log, step=None if log else hp.step)
    if kind == "Int":
        log = hp.sampling == "log"
        return d.IntDistribution(hp.min_value, hp.max_value, log=log, step=1 if log else (hp.step or 1))
    if kind == "Choice":
        return d.CategoricalDistribution(list(hp.values))
    if kind == "Boolean":
        return d.CategoricalDistribution([False, True])
    if kind == "Fixed":
        return d.CategoricalDistribution([hp.value])
    return None


def mirror(results_dir, study_name, meta, trials):
    """Add the trials not mirrored yet. trials: [(trial_id, status, params, distributions, value, metrics)]."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective, direction = meta.get("objective") or ("val_accuracy", "max")
    url = storage_url(results_dir)
    if url not in _storages:  # one connection pool a process, not one a trial
        _storages[url] = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=study_name, storage=_storages[url], load_if_exists=True,
                                direction="minimize" if direction == "min" else "maximize")
    data = meta.get("data") or {}
    for key, value in {"family": meta.get("family"), "variant": meta.get("variant"),
                       "data_source": data.get("source"), "data_fingerprint": data.get("fingerprint"),
                       "seed": meta.get("seed"), "objective": objective,
                       "engine": meta.get("engine")}.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    if study.metric_names != [objective]:
        with warnings.catch_warnings():  # set_metric_names is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([objective])
    present = {t.user_attrs.get("trial_id") for t in study.get_trials(deepcopy=False)}
    for trial_id, status, params, distributions, value, metrics in trials:
        if str(trial_id) in present or status not in STATES:
            continue  # already there, or still running
        kept = {k: v for k, v in params.items() if k in distributions and v is not None
                and distributions[k]._contains(distributions[k].to_internal_repr(v))}
        finite = status == "COMPLETE" and value is not None and math.isfinite(value)
        study.add_trial(optuna.trial.create_trial(
            params=kept, distributions={k: distributions[k] for k in kept},
            value=value if finite else None, state=getattr(optuna.trial.TrialState, status if finite or
                                                            status != "COMPLETE" else "FAIL"),
            user_attrs={"trial_id": str(trial_id), **{k: v for k, v in metrics.items() if v is not None}}))


_warned = set()


def mirror_rows(out_dir, meta, rows, distributions):
    """mirror() from trials.csv rows (hp_<name> columns) and {name: distribution}; never stops a search."""
    out_dir = Path(out_dir)
    objective = (meta.get("objective") or ["val_accuracy"])[0]
    trials = []
    for r in rows:
        params = {k[3:]: v for k, v in r.items() if k.startswith("hp_")}
        metrics = {k: v for k, v in r.items() if not k.startswith("hp_") and k not in ("trial_id", "status")
                   and v not in ("", None)}
        trials.append((r["trial_id"], r["status"], params, distributions, r.get(objective), metrics))
    try:
        mirror(out_dir.parent, out_dir.name, meta, trials)
    except Exception as e:  # noqa: BLE001 - the dashboard copy is a convenience: say so once, go on
        if out_dir not in _warned:
            _warned.add(out_dir)
            from suite_common import log
            log(f"note: the trials of {out_dir.name} could not be copied to {storage_url(out_dir.parent)} for "
                f"optuna-dashboard ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
