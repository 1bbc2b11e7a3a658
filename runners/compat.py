"""Every change the suite makes to a third-party library, and every private name it relies on, in one place.

Each entry of KNOWN says which versions it was written for. `check_versions()`
runs when an engine starts and says in one line per library when the installed
version is outside that range (the suite still runs; tests/test_compat.py
checks that each patch still takes effect). `apply()` makes the patches; the
engines call it when a search starts, never on import.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import sys
import types
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from packaging.version import Version

from lyrics_cifar_search.suite_common import atomic
from lyrics_cifar_search.suite_common.failpoints import failpoint

if TYPE_CHECKING:  # OneStateFile is mixed into a Keras Tuner Tuner: the checker reads it as one
    from keras_tuner import Tuner as TunerMixin
else:
    TunerMixin = object

# distribution -> (lowest version, first version not checked), what the suite does with its internals
KNOWN = {
    "keras-tuner": ("1.4.7", "1.5", "oracle state written atomically (utils.save_json); a debug print removed "
                    "from conditions.Parent.to_proto; Tuner._get_tuner_fname (one state file for single and chief runs); "
                    "keras_tuner.src's protos, OracleClient, OracleServicer and Trial, Oracle._retry_queue, Oracle._duplicate and "
                    "_max_collisions (the study oracle's collision rule), Oracle._save_trial, _record_values, "
                    "_display and _run_times (the study oracle's create_trial), Oracle._check_consecutive_failures, and a "
                    "worker's OracleClient given another class (runners/keras_search/distributed.py)"),
    "optuna": ("4.9", "6", "a value's place in a distribution (BaseDistribution._contains); a RUNNING trial's Trial "
               "built with its constructor; the storage's own "
               "methods for a trial's late parameters and ids (set_trial_param, get_trial_id_from_study_id_trial_number); "
               "its trial and heartbeat tables (optuna.storages._rdb.models) for trials nobody runs; the search "
               "policy's (runners/policy.py): TPESampler._sample, _compute_acquisition_func and _random_sampler "
               "(piBO), RandomSampler._rng, SuccessiveHalvingPruner's completed_rung_<k> attributes and "
               "_reduction_factor, HyperbandPruner._pruners and _try_initialization, Study._storage and _study_id"),
    "keras": ("3.5", "4", "TensorFlow marked absent on other backends (keras.src.utils.module_utils); "
              "Trainer._symbolic_build before a fit on TensorFlow (quick_fit)"),
    "tensorflow": ("2.16", "2.22", "traced steps' gradient functions dropped from ops._gradient_registry"),
    "torch": ("2.1", "2.11", "torch._dynamo.reset skipped when nothing was compiled (convert_frame.FRAME_COUNTER); "
              "torch.as_tensor swapped while a CUDA graph is recorded"),
}


def installed(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_versions(versions: Optional[dict[str, Optional[str]]] = None) -> list[str]:
    """One line for each library whose installed version is outside what the suite's patches were written for."""
    lines = []
    for name, (low, high, what) in KNOWN.items():
        version = (versions or {}).get(name) if versions is not None else installed(name)
        if version is None:
            continue
        v = Version(version)
        if not Version(low) <= v < Version(high):
            lines.append(f"{name} {version} is outside {low} to below {high}, the versions the suite's changes "
                         f"were written for ({what.split(';')[0]}, ...): if a search misbehaves, install "
                         f"{name}>={low},<{high} (runners/compat.py)")
    return lines


# --- Keras Tuner -----------------------------------------------------------------------------------------

# What a refused write of Keras Tuner's state raises: the engine's WriteFailed, given to apply() (this module sits
# below the engines and imports none of them)
_write_failed: Any = None


def save_json_atomically(path: str, obj: Any) -> str:
    """Keras Tuner writes its oracle and trial state with a plain open(); a kill mid-write would leave
    truncated JSON that stops every later resume. All of it goes through utils.save_json."""
    text = json.dumps(obj)
    new_trial = str(path).endswith("trial.json") and not os.path.exists(path)
    try:
        atomic.write_text(path, text)
    except OSError as e:  # a full disk stops the search (one line), never fails the trial being recorded
        raise (_write_failed.of(e) if _write_failed else e) from e
    if new_trial:
        failpoint("trial-file-written")  # a new trial's file, before the oracle's state records it
    return text


class OneStateFile(TunerMixin):
    """A Keras Tuner Tuner mixin: Keras Tuner names its state file after the tuner id (Tuner._get_tuner_fname)
    and reloads the oracle only if that file exists; one name for every non-worker run (single or chief), so
    switching between them resumes the same search."""

    def _get_tuner_fname(self):
        if self.is_worker():
            return super()._get_tuner_fname()
        return os.path.join(str(self.project_dir), "tuner0.json")


def keras_tuner_distribute() -> types.SimpleNamespace:
    """Keras Tuner's chief/worker internals, which runners/keras_search/distributed.py builds on:
    protos, OracleClient, OracleServicer (keras_tuner.src.distribute) and the Trial module (its TrialStatus)."""

    from keras_tuner.src import protos  # Keras Tuner: only for a Keras family
    from keras_tuner.src.distribute import oracle_chief, oracle_client  # Keras Tuner: only for a Keras family
    from keras_tuner.src.engine import trial  # Keras Tuner: only for a Keras family
    return types.SimpleNamespace(protos=protos, OracleClient=oracle_client.OracleClient,
                                 OracleServicer=oracle_chief.OracleServicer, trial=trial)


@contextlib.contextmanager
def consecutive_failure_check_deferred(oracle: Any) -> Iterator[None]:
    """Keras Tuner's Oracle.end_trial checks max_consecutive_failed_trials (Oracle._check_consecutive_failures)
    before it saves the ended trial; within this, the check is skipped (check_consecutive_failures runs it)."""
    oracle._check_consecutive_failures = lambda: None
    try:
        yield
    finally:
        del oracle._check_consecutive_failures


def check_consecutive_failures(oracle: Any) -> None:
    """Keras Tuner's own check: RuntimeError once max_consecutive_failed_trials trials in a row failed."""
    type(oracle)._check_consecutive_failures(oracle)


def retry_queue(oracle: Any) -> list[str]:
    """The trial ids a Keras Tuner oracle hands out again before new ones (Oracle._retry_queue, a list the
    caller may change in place)."""
    return oracle._retry_queue


def start_trial(oracle: Any, tuner_id: str, trial: Any) -> None:
    """What Keras Tuner's Oracle.create_trial does with a new RUNNING trial, for an oracle that makes the trial
    itself (the study oracle, whose trial ids are the study's numbers): its values recorded as tried
    (Oracle._record_values), the trial ongoing, its file and the oracle's state saved (Oracle._save_trial),
    and Keras Tuner's display told (Oracle._display)."""
    oracle._record_values(trial)
    oracle.ongoing_trials[tuner_id] = trial
    oracle.trials[trial.trial_id] = trial
    oracle.start_order.append(trial.trial_id)
    oracle._save_trial(trial)
    oracle.save()
    oracle._display.on_trial_begin(trial)


def run_times(oracle: Any) -> dict[str, int]:
    """How many times a Keras Tuner oracle has run each trial id (Oracle._run_times, a dict the caller may
    change): its retries of a crashed trial stop at max_retries_per_trial."""
    return oracle._run_times


def already_tried(oracle: Any, values: dict[str, Any]) -> bool:
    """Whether a Keras Tuner oracle has run these values before (Oracle._duplicate, its own collision check)."""
    return oracle._duplicate(values)


def max_collisions(oracle: Any) -> int:
    """How many proposals in a row already tried a Keras Tuner oracle takes before it calls its space used up
    (Oracle._max_collisions, 20)."""
    return oracle._max_collisions


def running_trial(study: Any, storage_id: int) -> Any:
    """The Optuna Trial for a study trial still RUNNING, made by another process (one killed after Keras Tuner
    saved the trial's end, before the study was told), so the usual set_user_attr and tell finish it: built as
    study.ask() builds it, optuna.trial.Trial(study, storage id), a constructor Optuna does not recommend
    calling directly."""
    import optuna  # Optuna: only once a search's record is used
    return optuna.trial.Trial(study, storage_id)


def running_without_heartbeat(storage: Any, study_name: str, older_than_s: float) -> list[int]:
    """Numbers of the study's RUNNING trials that never sent a heartbeat and started more than older_than_s
    seconds ago: nobody runs them (a plain `study.ask()`, a process killed before its first beat). Optuna's own
    stale check skips a trial with no heartbeat row (RDBStorage._get_stale_trial_ids), so this reads its
    tables (optuna.storages._rdb.models) directly."""
    import datetime

    import optuna  # Optuna and SQLAlchemy: only once a search's record is used
    import sqlalchemy
    from optuna.storages._rdb import models
    study_id = storage.get_study_id_from_name(study_name)
    session = storage.scoped_session()
    try:
        now = session.execute(sqlalchemy.func.now()).scalar().replace(tzinfo=None)
        rows = (session.query(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialModel.state == optuna.trial.TrialState.RUNNING)
                .filter(~models.TrialModel.heartbeats.any())
                .all())
        cut = datetime.timedelta(seconds=older_than_s)
        return [r.number for r in rows if r.datetime_start is None or now - r.datetime_start.replace(tzinfo=None) > cut]
    finally:
        storage.scoped_session.remove()


def storage_of(study: Any) -> Any:
    """The database storage an Optuna study writes to (Study._storage, which Optuna may wrap in its
    _CachedStorage: its _backend)."""
    storage = study._storage
    return getattr(storage, "_backend", storage)


def become(obj: Any, cls: type) -> Any:
    """Give an object another class with the same state: Keras Tuner makes a worker's oracle an OracleClient
    itself, with no way to pass a subclass."""
    obj.__class__ = cls
    return obj


def in_distribution(distribution: Any, value: Any) -> bool:
    """Is `value` one of an Optuna distribution's values (BaseDistribution._contains, on its internal form)?"""
    return distribution._contains(distribution.to_internal_repr(value))


def parent_to_proto(self: Any) -> Any:
    """conditions.Parent.to_proto of keras-tuner 1.4.8 without its debug print() (a stray line each time a
    conditional hyperparameter travels between chief and worker)."""
    from keras_tuner.src import protos  # Keras Tuner: only for a Keras family
    proto = protos.get_proto()
    first = self.values[0]
    kind = ("string_value" if isinstance(first, str) else "boolean_value" if isinstance(first, bool)
            else "int_value" if isinstance(first, int) else "float_value")
    values = [proto.Value(**{kind: v}) for v in self.values]
    return proto.Condition(parent=proto.Condition.Parent(name=self.name, values=values))


def mark_tensorflow_absent() -> None:
    """On JAX or PyTorch, Keras still imports TensorFlow whenever it is installed (to seed it and to check
    shapes when saving): seconds in a search's first trial (bench/README.md), for nothing the suite uses. Unless something
    imported it already, Keras is told it is absent, as on a machine without it (the lent GPU machines)."""
    import keras  # Keras starts only when a Keras model is built or loaded
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return
    from keras.src.utils import module_utils  # Keras starts only when a Keras model is built or loaded
    if module_utils.tensorflow._available is None:
        module_utils.tensorflow._available = False


def apply(write_failed: Optional[type] = None) -> None:
    """Make the patches (idempotent). Called when a Keras search starts, with the engine's error for a write the
    disk refused (write_failed.of(OSError): an error that stops Keras Tuner's search)."""
    global _write_failed
    _write_failed = write_failed or _write_failed
    from keras_tuner.src import utils as kt_utils  # Keras Tuner: only for a Keras family
    from keras_tuner.src.engine import conditions  # Keras Tuner: only for a Keras family
    kt_utils.save_json = save_json_atomically
    conditions.Parent.to_proto = parent_to_proto
    mark_tensorflow_absent()


# --- TensorFlow and PyTorch internals, used between and within trials --------------------------------------

def forget_traced_gradients() -> None:
    """TensorFlow: tracing a train step registers a gradient function for its all-reduce of the gradients
    ("CustomGradient-N") in a global registry that nothing empties; each holds that step's whole graph, and
    through it the model's variables and optimizer slots (tensorflow/tensorflow#97697, keras-team/keras#20245).
    Between trials no traced step is alive, so none can be needed again. If the registry moves, nothing."""
    from tensorflow.python.framework import ops  # TensorFlow: only on that backend
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    if isinstance(registry, dict):
        for name in [n for n in registry if n.startswith("CustomGradient-")]:
            del registry[name]


def quick_fit(model: Any) -> Any:
    """TensorFlow: two costs Keras makes a small model pay in every trial, taken off its fit() (installed on the
    model; each fit() of a family that fits twice, recompiling in between, gets both). Arrays only: anything else
    (a dataset, a generator, validation_split) and other backends fit as they are. The same batches and numbers.

    - Keras builds the optimizer's slots and the compiled loss and metrics inside the first trace of the train
      step (first only under a distribution strategy: Trainer._maybe_symbolic_build), and a tf.function that
      creates variables is traced twice. They are built from fit()'s first row (Trainer._symbolic_build): one
      trace.
    - Without steps_per_epoch (and validation_steps) Keras's EpochIterator makes a new tf.data iterator at each
      epoch's start and another at its end, for training and again for validation: four an epoch, 13 ms each
      on 2 CPU cores. Given the steps it already counts, it keeps the one made at the end: two.
    Together about 0.3 s of a small trial's 1.6 s start and 35 ms of its 180 ms epoch (bench/README.md,
    first_run.py)."""
    fit = model.fit

    def arrays(*values):
        leaves = [v for v in keras_tree().flatten(values) if v is not None]
        return bool(leaves) and all(hasattr(v, "shape") and len(v.shape) and hasattr(v, "__getitem__")
                                    for v in leaves)

    def steps(data, batch_size):
        return -(-len(keras_tree().flatten(data)[0]) // batch_size)

    def fit_quickly(x=None, y=None, *args, **kwargs):
        if args or kwargs.get("validation_split") or not arrays(x, y):
            return fit(x, y, *args, **kwargs)
        if hasattr(model, "_symbolic_build"):
            model._symbolic_build(data_batch=keras_tree().map_structure(lambda v: v[:1], (x, y)))
        batch_size = kwargs.get("batch_size") or 32  # fit()'s own default
        if not kwargs.get("steps_per_epoch"):
            kwargs["steps_per_epoch"] = steps(x, batch_size)
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple) and arrays(*validation) and not kwargs.get("validation_steps"):
            kwargs["validation_steps"] = steps(validation[0], kwargs.get("validation_batch_size") or batch_size)
        return fit(x, y, **kwargs)

    model.fit = fit_quickly
    return model


def keras_tree() -> Any:
    import keras  # Keras: only where a model is trained
    return keras.tree


def nothing_compiled_by_dynamo() -> bool:
    """True when torch.compile has compiled no frame since the last reset (a private counter: if it moves,
    False, and clear_session resets as it always did)."""
    from torch._dynamo import convert_frame  # PyTorch: only on that backend
    return getattr(convert_frame, "FRAME_COUNTER", None) == 0


@contextlib.contextmanager
def dynamo_reset_skipped() -> Iterator[None]:
    """clear_session also resets torch.compile's caches, and with a CUDA GPU that reset imports
    torch._inductor (once per process: bench/README.md), which bare fits never pay."""
    import torch._dynamo  # PyTorch: only on that backend
    reset, torch._dynamo.reset = torch._dynamo.reset, lambda: None
    try:
        yield
    finally:
        torch._dynamo.reset = reset


@contextlib.contextmanager
def torch_as_tensor(replacement: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """torch.as_tensor replaced while a CUDA graph is recorded (runners/keras_search/accelerate.py)."""
    import torch  # PyTorch: only on that backend
    original, torch.as_tensor = torch.as_tensor, replacement
    try:
        yield original
    finally:
        torch.as_tensor = original


# --- Optuna: the search policy's samplers and pruners (runners/policy.py) -----------------------------------------

def random_state(sampler: Any) -> Any:
    """A RandomSampler's own numpy RandomState (RandomSampler._rng, lazily made): what its reseed_rng reseeds."""
    return sampler._rng.rng


def set_tpe_startup_sampler(tpe: Any, sampler: Any) -> None:
    """The sampler TPE's start-up trials come from (TPESampler._random_sampler, a RandomSampler: it also
    answers TPE's before_trial, after_trial and reseed_rng)."""
    tpe._random_sampler = sampler


def finished_in_whole_study(study: Any) -> int:
    """COMPLETE and PRUNED trials of the whole study, also when `study` is one of Hyperband's bracket views (which
    filter get_trials): read from the storage."""
    import optuna  # Optuna: only once a search's record is used
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study._storage.get_all_trials(study._study_id, deepcopy=False, states=states))


def rung_values(study: Any, trial: Any) -> list[float]:
    """The values recorded at the rung where successive halving just judged `trial` (its highest
    completed_rung_<k>, which the pruner has written to the storage): every trial's value there, its own too."""
    own = study._storage.get_trial(trial._trial_id).system_attrs
    rung = 0
    while f"completed_rung_{rung + 1}" in own:
        rung += 1
    key = f"completed_rung_{rung}"
    return [t.system_attrs[key] for t in study.get_trials(deepcopy=False) if key in t.system_attrs]


def reduction_factor(pruner: Any) -> int:
    """A SuccessiveHalvingPruner's eta."""
    return pruner._reduction_factor


def brackets(hyperband: Any) -> list:
    """A HyperbandPruner's per-bracket SuccessiveHalvingPruners ([] until its first trial initialises them)."""
    return hyperband._pruners


def replace_brackets(hyperband: Any, cls: type) -> None:
    """Each bracket's SuccessiveHalvingPruner made again as `cls` (a subclass) with the same resources, rate and
    bootstrap count, as HyperbandPruner._try_initialization made it."""
    hyperband._pruners[:] = [
        p if isinstance(p, cls) else cls(min_resource=p._min_resource, reduction_factor=p._reduction_factor,
                                         min_early_stopping_rate=p._min_early_stopping_rate,
                                         bootstrap_count=p._bootstrap_count)
        for p in hyperband._pruners]
