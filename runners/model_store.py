"""Kept trials' models in Optuna's artifact store, beside the study: one set of models for a search, whichever
process or host trained them.

    results/artifacts/             the default store (Optuna's FileSystemArtifactStore); --artifact-store PATH
                                   names another (a folder every host reaches), or s3://BUCKET (boto3's store)
    each kept trial's model        one artifact, model-trial-<id>.zip: its folder as best/ holds it (meta.json, the
                                   model file, tokenizer, artists, blocks), uploaded while the trial runs, then
                                   claimed by the trial's user attribute `model_artifact`

    optuna-dashboard --artifact-dir results/artifacts sqlite:///results/optuna.db    each trial's model file

Which are kept (--keep-models K): the K best finished trials in the first objective (ties broken by the next, then
by trial number), every trial of a Pareto search's front, and the baseline; best/ and baseline/ stay in the
results folder as before. With the defaults (K = 1, no --artifact-store, one objective) nothing goes to a store:
best/ and baseline/ are the kept models, as before, and the disk holds what it did. A trial that falls out of
that set has its file removed from the store (a finished trial's attributes cannot change, so its claim stays,
and loading it says it was not kept).

A kill during an upload leaves no trial claiming a model it lacks: the file is written under a temporary name and
renamed (the file-system store), Optuna then records it on the trial, and the trial claims it last.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import BinaryIO

import optuna

from lyrics_cifar_search.runners import record
from lyrics_cifar_search.suite_common import UserError, masked
from lyrics_cifar_search.suite_common.failpoints import failpoint

CLAIM = "model_artifact"  # the trial's user attribute: the id of its model in the store
DEFAULT_FOLDER = "artifacts"  # results/artifacts/
PROBE = ".probe-"  # check()'s file, written and removed before any trial
UPLOAD_STAGED = ".upload-"  # a model folder staged only to be uploaded (best_store.stage_best's name), then removed
# what a model's zip may hold: the files stage_best writes, nothing else (no folder, no link)
MODEL_FILES = {"meta.json", "model.keras", "model.skops", "tokenizer.json", "artists.json", "blocks.json",
               "reconstructions.png"}


class FolderStore(optuna.artifacts.FileSystemArtifactStore):
    """Optuna's file-system store, each file written whole: under a temporary name, then renamed."""

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        path = self._get_filepath(artifact_id)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(content_body, f)
                if not artifact_id.startswith(PROBE):  # a model's upload, not check()'s probe
                    failpoint("artifact-half-written")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


class ModelStore:
    """Where a search keeps its trials' models: `where` as given (a folder or s3://bucket), `store` Optuna's."""

    def __init__(self, where: str, store, keep: int = 1):
        self.where, self.store, self.keep = where, store, keep
        self.removed: set[str] = set()  # artifacts this process removed (not asked again)

    def check(self) -> None:
        """A store that cannot take a file: one line (UserError), before any trial runs."""
        probe = f"{PROBE}{uuid.uuid4().hex}"
        try:
            self.store.write(probe, io.BytesIO(b"ok"))
            self.store.remove(probe)
        except Exception as e:  # noqa: BLE001 - a folder, a bucket: whatever refuses it is the store's problem
            raise UserError(masked(f"cannot write models to the artifact store {self.where} ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}): give --artifact-store a "
                                   "folder or bucket this process can write, or free space there")) from None

    def upload(self, trial, folder: str | Path, trial_id: int, storage=None) -> str:
        """The model folder of a trial still running, zipped into the store and claimed by the trial (last)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"model-trial-{trial_id}.zip"
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(Path(folder).iterdir()):
                    if f.is_file() and f.name in MODEL_FILES:
                        z.write(f, f.name)
            with warnings.catch_warnings():  # marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                artifact_id = optuna.artifacts.upload_artifact(artifact_store=self.store, file_path=str(path),
                                                               study_or_trial=trial, storage=storage)
        failpoint("artifact-uploaded")  # in the store and on the trial's artifacts; not yet claimed
        if isinstance(trial, optuna.trial.FrozenTrial):
            storage.set_trial_user_attr(trial._trial_id, CLAIM, artifact_id)
        else:
            trial.set_user_attr(CLAIM, artifact_id)
        return artifact_id

    def upload_if_kept(self, study, objectives, trial, values, trial_id, is_baseline, staged) -> None:
        """A running trial's model into the store, claimed by the trial, if it would be kept (would_keep): the
        engines' one way. values: its objective values (None where one is missing: not kept); staged(): its model
        folder (one staged only for this, named .upload-*, is removed after)."""
        if any(v is None for v in values) or not would_keep(study, objectives, self.keep, values, trial.number,
                                                            is_baseline):
            return
        folder = staged()
        try:
            self.upload(trial, folder, trial_id)
        finally:
            if folder.name.startswith(UPLOAD_STAGED):
                shutil.rmtree(folder, ignore_errors=True)

    def fetch(self, artifact_id: str, what: str) -> Path:
        """A kept model, unpacked into a new temporary folder (its files checked by name first: only what
        stage_best writes, no path, no link); then loaded as any best/ is, with the same checks."""
        into = Path(tempfile.mkdtemp(prefix="lyrics-cifar-search-model-"))
        packed = into / "model.zip"
        try:
            with warnings.catch_warnings():  # marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.artifacts.download_artifact(artifact_store=self.store, file_path=str(packed),
                                                   artifact_id=artifact_id)
        except optuna.artifacts.exceptions.ArtifactNotFound:
            shutil.rmtree(into, ignore_errors=True)
            raise UserError(f"{what}: its model is not in the artifact store {self.where} any more (removed, or "
                            "another store): give the search's --artifact-store") from None
        try:
            with zipfile.ZipFile(packed) as z:
                names = z.namelist()
                odd = [n for n in names if n not in MODEL_FILES]
                if odd or "meta.json" not in names:
                    raise ValueError(f"holds {odd[0]!r}" if odd else "holds no meta.json")
                for info in z.infolist():
                    if info.file_size > 2 ** 33:
                        raise ValueError(f"{info.filename} declares {info.file_size} bytes")
                z.extractall(into)
        except (zipfile.BadZipFile, ValueError, OSError) as e:
            shutil.rmtree(into, ignore_errors=True)
            raise UserError(f"{what}: the artifact {artifact_id} in {self.where} is not a model this suite saved "
                            f"({e}); refusing to use it") from None
        packed.unlink()
        return into

    def remove(self, artifact_id: str) -> None:
        if artifact_id in self.removed:
            return
        try:
            self.store.remove(artifact_id)
        except optuna.artifacts.exceptions.ArtifactNotFound:
            pass
        self.removed.add(artifact_id)


def open_store(where: str | None, results_dir: str | Path, keep: int = 1) -> ModelStore:
    """--artifact-store: None (results/artifacts/, made here), a folder that exists, or s3://BUCKET (boto3)."""
    if where is None:
        folder = Path(results_dir) / DEFAULT_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        return ModelStore(str(folder.resolve()), FolderStore(folder), keep)
    if where.startswith("s3://"):
        bucket = where[len("s3://"):].strip("/")
        if not bucket or "/" in bucket:
            raise UserError(f"--artifact-store {where}: name a bucket alone, s3://BUCKET (Optuna's S3 store keeps "
                            "its files at the bucket's top)")
        try:
            import boto3  # noqa: F401 - only for an S3 store
        except ImportError:
            raise UserError(f"--artifact-store {where} needs boto3: pip install boto3 (S3-compatible endpoints: "
                            "the AWS_ENDPOINT_URL variable)") from None
        return ModelStore(where, optuna.artifacts.Boto3ArtifactStore(bucket), keep)
    folder = Path(where).expanduser()
    if not folder.is_dir():
        raise UserError(f"--artifact-store {where}: no such folder; create it (a folder every host reaches) or "
                        "leave the flag out to keep the models in the results folder")
    return ModelStore(str(folder.resolve()), FolderStore(folder), keep)


# --- which trials keep their model ------------------------------------------------------------------------------

def _rank_key(values, objectives, number):
    """A sort key: better first in the first objective, ties by the next, then by trial number."""
    return tuple(-v if d == "max" else v for v, (_, d) in zip(values, objectives)) + (number,)


def _finished(study):
    retried = record.retried(study)
    return [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if not record.interrupted(t, retried)]


def kept_numbers(study, objectives, keep: int) -> set[int]:
    """The trials whose models the store keeps: the `keep` best, a Pareto search's front, the baseline."""
    done = _finished(study)
    ranked = sorted(done, key=lambda t: _rank_key(t.values, objectives, t.number))
    kept = {t.number for t in ranked[:keep]}
    if len(objectives) > 1:
        kept |= {t.number for t in study.best_trials}
    return kept | {t.number for t in done if t.user_attrs.get("is_baseline")}


def would_keep(study, objectives, keep: int, values: list, number: int, is_baseline: bool) -> bool:
    """Whether a trial still running, with these objective values, would be kept if it finished now."""
    if is_baseline:
        return True
    done = _finished(study)
    mine = _rank_key(values, objectives, number)
    if sum(_rank_key(t.values, objectives, t.number) < mine for t in done) < keep:
        return True
    if len(objectives) > 1:  # on the front unless a finished trial dominates it
        def dominates(theirs):
            signs = [1 if d == "max" else -1 for _, d in objectives]
            return all(s * a >= s * b for s, a, b in zip(signs, theirs, values)) and \
                any(s * a > s * b for s, a, b in zip(signs, theirs, values))
        return not any(dominates(t.values) for t in done)
    return False


def evict(study, models: ModelStore, objectives) -> None:
    """Remove from the store the models of finished trials that are no longer kept (never a running trial's)."""
    kept = kept_numbers(study, objectives, models.keep)
    for t in study.get_trials(deepcopy=False, states=record.FINISHED):
        artifact = t.user_attrs.get(CLAIM)
        if artifact and t.number not in kept:
            models.remove(artifact)


def for_search(config, out_dir, pareto: bool = False) -> ModelStore | None:
    """The search's store (--artifact-store, --keep-models), checked writable (one line if not), or None for a
    search that keeps best/ and baseline/ alone: the default (one model kept, no store named, one objective:
    today's models and disk use), and Keras Tuner's own tuners, which record a trial only once it ended (and
    Keras Tuner's chief/worker mode, whose workers have no study to claim a model on: the Keras engine asks
    for a store only when it trains in one process). pareto: a search of several objectives keeps its front."""
    if config.tuner not in (None, "optuna"):
        return None
    if config.keep_models == 1 and not config.artifact_store and not pareto:
        return None
    models = open_store(config.artifact_store, Path(out_dir).parent, config.keep_models)
    models.check()
    return models


def record_store(study, models: ModelStore, worker: bool) -> None:
    """The study names its store (user attribute `artifact_store`: load_best finds the models there); a worker
    whose store is another says so once (its models would not be the search's one set)."""
    recorded = study.user_attrs.get("artifact_store")
    if worker:
        if recorded and recorded != models.where:
            from lyrics_cifar_search.suite_common import warn
            warn(f"note: the search keeps its models in {recorded}; this worker's go to {models.where}: give "
                 f"--artifact-store {recorded} (a folder every host reaches, or a bucket) to keep one set")
        return
    if recorded != models.where:
        study.set_user_attr("artifact_store", models.where)
    if study.user_attrs.get("keep_models", 1) != models.keep:  # what load_best says of a model not kept
        study.set_user_attr("keep_models", models.keep)


# --- loading a kept model (best_model.load_best's trial=, rank=, storage=) ----------------------------------------

def find_study(url: str, folder_name: str, study_name: str | None = None):
    """The search's study in the record at `url`: named like its results folder (<family>[_artist]), or in a shared
    --storage <folder>-<hash>; study_name picks one where several searches of the family share the storage."""
    storage = record.open_storage(None, url, heartbeat=False)
    names = optuna.get_all_study_names(storage=storage)
    if study_name is not None:
        found = [study_name] if study_name in names else []
    else:
        found = [n for n in names if n == folder_name or n.startswith(folder_name + "-")]
    if not found:
        raise UserError(masked(f"no search of {folder_name} in {url}" + (f" named {study_name!r}" if study_name
                                                                          else "") + ": check the storage URL"))
    if len(found) > 1:
        raise UserError(masked(f"{len(found)} searches of {folder_name} in {url} ({', '.join(sorted(found))}): "
                               "name one with study=..."))
    return optuna.load_study(study_name=found[0], storage=storage)


def objectives_of(study) -> list[tuple[str, str]]:
    """The study's [(metric, "max"|"min"), ...], as the search described it (record.describe)."""
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return [(n, "max" if d == optuna.study.StudyDirection.MAXIMIZE else "min") for n, d in zip(names, study.directions)]


def chosen_trial(study, trial: int | None, rank: int | None):
    """The study trial load_best asked for: trial=N (its suite id), or rank=k among the finished trials (1: the
    best, best/'s), or the best."""
    done = sorted(_finished(study), key=lambda t: _rank_key(t.values, objectives_of(study), t.number))
    if trial is None:
        k = rank or 1
        if not 1 <= k <= len(done):
            raise UserError(f"rank={k}: the search has {len(done)} finished trials; rank is 1 (the best) to "
                            f"{len(done)}")
        return done[k - 1], k
    retried = record.retried(study)
    for t in study.get_trials(deepcopy=False):
        if record.trial_id(t) == trial and not record.interrupted(t, retried) and t.state in record.FINISHED:
            if t.state != optuna.trial.TrialState.COMPLETE:
                raise UserError(f"trial {trial} did not finish ({t.state.name}): it has no model")
            return t, done.index(t) + 1
    raise UserError(f"the search has no trial {trial} (trials.csv lists them)")


def fetch_kept(study, chosen, k, results_dir, *, artifact_store=None) -> Path:
    """An unpacked folder holding a kept trial's model (chosen_trial's trial and rank k), from the search's store
    (artifact_store, or the one the study records, or results_dir/artifacts)."""
    what = f"trial {record.trial_id(chosen)} of {study.study_name} (rank {k})"
    artifact = chosen.user_attrs.get(CLAIM)
    keep = study.user_attrs.get("keep_models", 1)
    if not artifact or chosen.number not in kept_numbers(study, objectives_of(study), keep):
        raise UserError(f"{what}: its model was not kept (--keep-models {keep} keeps the {keep} best, a Pareto "
                        f"search's front and the baseline): run the search with --keep-models {k} or more")
    where = artifact_store or study.user_attrs.get("artifact_store")
    return open_store(where, results_dir).fetch(artifact, what)
