"""What a trial leaves behind when it ends, the same in both engines (runners/keras_search/tuner.py's
on_trial_end, runners/optuna_engine.py's run_one and after_trial):

1. `stage`, once the trial has trained and before the study records it: its model staged as a best/ candidate
   if it beats best/, as each kept folder it is (baseline/, a family's kept_trials), and uploaded to the model
   store if the store would keep it;
2. the engine has the study record the trial (COMPLETE, PRUNED or FAIL);
3. `settle`, once it is recorded: a complete trial's staged folders take their places, the store lets go of
   the models no longer kept;
4. `write_record`: trials.csv rewritten from the study, and the trial's progress line.

A kill between 1 and 3 leaves staged folders that the next run's best_store.reconcile_best finishes or drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

from lyrics_cifar_search.runners import best_store, model_store, record
from lyrics_cifar_search.runners.trials_table import MAX_CONSECUTIVE_FAILURES

if TYPE_CHECKING:
    import optuna
    from lyrics_cifar_search.runners.search_progress import Progress

Objectives = Sequence[tuple[str, str]]


@dataclass
class Staged:
    """A trial's models staged before the study records it: its best/ candidate (None if it does not beat
    best/) and its kept folders ({folder: staged folder}; the candidate itself where it is both)."""
    candidate: Optional[Path] = None
    kept: dict[str, Path] = field(default_factory=dict)


def model_meta(prepared_meta: dict[str, Any], number: int, params: dict[str, Any], metrics: dict[str, Any],
               model_file: str, parameter_count: int, **extra: Any) -> dict[str, Any]:
    """A trial's model's meta.json (best/, baseline/, the model store): the data's meta (runners/prepare.py),
    the trial's id, values and metrics, its model file and its size; extra: an engine's own (Keras: max_epochs)."""
    return {**prepared_meta, "trial_id": number, "hyperparameters": params, "metrics": metrics,
            "model_file": model_file, **extra, "parameter_count": parameter_count}


def stage(out_dir: Path, number: int, save: Callable[[Path], None], meta: dict[str, Any], artifacts: dict,
          *, objectives: Objectives, metrics: dict[str, Any], kept_folders: Iterable[str] = (),
          models: Optional[model_store.ModelStore] = None, study: Optional[optuna.Study] = None,
          trial: Any = None, is_baseline: bool = False) -> Staged:
    """Step 1. save(folder) writes the trained model into a folder; meta is its meta.json; kept_folders the
    folders beside best/ this trial is kept as (best_store.BASELINE for the baseline); models, study, trial
    (the study's trial, running) and is_baseline: the model store's upload (models None: no store)."""
    staged = Staged()
    if best_store.is_better(metrics, out_dir, objectives):  # staged now, promoted once the study recorded it
        staged.candidate = best_store.stage_best(out_dir, number, save, meta, artifacts)
    for folder in kept_folders:
        staged.kept[folder] = staged.candidate or best_store.stage_best(
            out_dir, number, save, {**meta, "is_baseline": folder == best_store.BASELINE}, artifacts,
            name=best_store.staged_name(folder))
    if models is not None:  # a model that would be kept goes to the store, claimed by its study trial
        models.upload_if_kept(
            study, objectives, trial, [metrics.get(n) for n, _ in objectives], number, is_baseline,
            lambda: staged.candidate or staged.kept.get(best_store.BASELINE) or best_store.stage_best(
                out_dir, number, save, meta, artifacts, name=f"{model_store.UPLOAD_STAGED}{number}"))
    return staged


def settle(out_dir: Path, staged: Optional[Staged], complete: bool, objectives: Objectives,
           study: Optional[optuna.Study] = None, models: Optional[model_store.ModelStore] = None) -> None:
    """Step 3, once the study has recorded the trial: a complete trial's kept folders and best/ candidate take
    their places (a candidate no longer better than best/ is dropped); the store removes the models that fell
    out of the kept set. A trial that did not complete leaves its staged folders for reconcile_best."""
    if staged is not None and complete:
        for folder, path in staged.kept.items():
            best_store.save_baseline(out_dir, path, folder)
        if staged.candidate is not None:
            best_store.promote(out_dir, staged.candidate, objectives)
    if models is not None:
        model_store.evict(study, models, objectives)


def write_record(study: optuna.Study, out_dir: Path, progress: Progress, number: int, state: str,
                 score: Optional[float], defaults: dict[str, Any]) -> list[dict]:
    """Step 4: trials.csv rewritten from the study (runners/record.py), and the trial's line (search_progress);
    returns the rows."""
    rows = record.write_table(study, out_dir)
    progress.trial_done(rows, number, state, score, defaults)
    return rows


def too_many_failures(family: str, last_error: Any) -> str:
    """The line either engine ends a search with after trials_table.MAX_CONSECUTIVE_FAILURES failures in a
    row."""
    return f"{family}: {MAX_CONSECUTIVE_FAILURES} trials failed in a row (last: {last_error}); stopping the search"
