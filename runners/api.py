"""The suite from Python: a search run as the command line runs it, its trials and models handed back.

    from lyrics_cifar_search import search

    result = search("lyrics_tfidf_logreg", data="train.csv", max_trials=20)   # or a pandas DataFrame
    result.trials            # trials.csv as a DataFrame, one row per trial (like Optuna's trials_dataframe())
    result.best_trial        # the best finished row (like study.best_trial); result.baseline: trial 0's row
    result.best_model()      # the saved best model: .predict(["raw lyrics ..."]) (load_best)
    result.best_models(3)    # the 3 best trials' models, best first (search(..., keep_models=3) keeps them)

Every keyword is a flag of `lyrics-search` (`max_trials=20` is `--max-trials 20`, `with_artist=True` is
`--with-artist`; docs/reference.md lists them), so a search begun here resumes from the command line and the
other way round: the same results folder, trials.csv, record and resume rules (a call with other data or
options is refused; `fresh=True` starts again). Bad input raises UserError with the command line's one line,
before anything is written. Nothing is printed: progress goes to the `lyrics_cifar_search` loggers (set up
logging, e.g. `logging.basicConfig(level=logging.INFO)`, to see it), and `result.summary()` gives the lines
the command ends with.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from lyrics_cifar_search.runners import search as search_cli
from lyrics_cifar_search.runners import shaping, trials_table
from lyrics_cifar_search.suite_common import UserError, atomic

if TYPE_CHECKING:  # pandas and the loaded model: only once a search has run
    import pandas as pd

    from lyrics_cifar_search.runners.best_model import BestModel

# keyword arguments that are not flags of `lyrics-search`, or are flags with another meaning here
_NOT_FLAGS = {"data", "test_data", "family"}


@dataclass
class SearchResult:
    """What a search left in its results folder: its trials, its best trial and baseline, its models."""
    family: str
    folder: Path  # results/<family>[_artist]/
    results_dir: Path
    objective: tuple  # (metric, "max" | "min"): what the search ranked trials by (a Pareto search: its first)
    trials: "pd.DataFrame"  # trials.csv: trial_id, status, is_baseline, hp_<name>..., val_accuracy, ...
    objectives: tuple = ()  # a Pareto search's (objective=["val_accuracy", "params"]): every (metric, direction)

    @property
    def best_trial(self) -> Optional["pd.Series"]:
        """The finished trial with the best objective value (None if none finished); a Pareto search's: the best
        in its first objective, ties broken by the next (best/'s model)."""
        done = trials_table.finished(self.trials, self.objective[0])
        if done.empty:
            return None
        if len(self.objectives) > 1:
            return done.loc[trials_table.front_best_index(done, self.objectives)]
        return done.loc[trials_table.best_index(done[self.objective[0]], self.objective[1])]

    @property
    def best_trials(self) -> "pd.DataFrame":
        """A Pareto search's front (like Optuna's study.best_trials): the finished trials no other beats in every
        objective; for a search of one objective, the best trial alone."""
        if len(self.objectives) > 1 and "pareto" in self.trials:
            return self.trials[self.trials["pareto"].astype(str) == "True"]
        best = self.best_trial
        return self.trials.iloc[:0] if best is None else self.trials.loc[[best.name]]

    @property
    def baseline(self) -> Optional["pd.Series"]:
        """Trial 0, the earlier study's configuration (None with no_baseline=True, or if it did not finish)."""
        from lyrics_cifar_search.suite_common import tables
        base = tables.baseline(trials_table.finished(self.trials, self.objective[0]))
        return base.iloc[0] if len(base) else None

    @property
    def best_params(self) -> dict:
        """The best trial's hyperparameters (like Optuna's study.best_params)."""
        best = self.best_trial
        if best is None:
            return {}
        import pandas as pd
        # plain Python values (a CSV column's numbers come back as NumPy scalars)
        return {k[3:]: v.item() if hasattr(v, "item") else v for k, v in best.items()
                if k.startswith("hp_") and pd.notna(v)}

    def best_model(self) -> "BestModel":
        """The search's best model, loaded as load_best loads it (best/): .predict, .predict_proba, .meta."""
        from lyrics_cifar_search.runners.best_model import load_best
        return load_best(self.folder / "best")

    def best_models(self, num_models: int = 1) -> list["BestModel"]:
        """The num_models best trials' models, best first (like Keras Tuner's get_best_models): the search keeps
        them with keep_models >= num_models (load_best(family, rank=k) loads each)."""
        from lyrics_cifar_search.runners.best_model import load_best
        return [load_best(self.folder.name.removesuffix("_artist"), self.results_dir,
                          with_artist=self.folder.name.endswith("_artist"), rank=k) for k in range(1, num_models + 1)]

    def baseline_model(self) -> Optional["BestModel"]:
        """Trial 0's model (baseline/), or None where the search kept none."""
        from lyrics_cifar_search.runners.best_model import load_best
        return load_best(self.folder / "baseline") if (self.folder / "baseline" / "meta.json").exists() else None

    def summary(self) -> str:
        """The lines the command line ends a search with: the best trial beside the baseline, the best model on
        the test split (scored now), what to run next."""
        from lyrics_cifar_search import search_spaces
        from lyrics_cifar_search.runners.search_summary import summary_lines
        family = search_spaces.describe(self.family)
        return "\n".join(summary_lines(family, self.folder, str(self.results_dir), None))


def search(family: str, data: Union[str, Path, "pd.DataFrame", None] = None, *,
           test_data: Union[str, Path, "pd.DataFrame", None] = None, **options: Any) -> SearchResult:
    """Run (or resume) a search of `family` (built-in, or one you registered with register_family) and return
    what it found.

    data: a lyrics CSV/TSV path, a pandas DataFrame (saved once, by content, under results/_data/, so the same
    frame resumes the same search), a CIFAR archive or folder, "demo", or None (the generated demo set).
    options: the command line's flags as keywords (max_trials=10, epochs=None, tuner=None, sampler="tpe",
    pruner="median", seed=42, objective=None (or several: ["val_accuracy", "params"]), time_budget="90s" or seconds, no_baseline=False,
    results_dir="results", fresh=False, with_artist=False, workers=1, storage=None, families_from=[...],
    text_column=..., verbose=False, ...). Raises UserError for bad input (one line, nothing written)."""
    results_dir = Path(options.get("results_dir", "results"))
    argv = [family, *_data_flags("--data", data, results_dir), *_data_flags("--test-data", test_data, results_dir),
            *_flags(options, results_dir)]
    args = search_cli.build_parser().parse_args(argv)
    if args.list or args.describe:
        raise UserError("list and describe are not searches: use search_spaces.list_families() or "
                        "search_spaces.describe(name)")
    ran = search_cli.run_search(args, None, argv)
    if ran is None:
        raise UserError("the search ran as a worker of another process: its results are that process's")
    found, _, out_dir, _ = ran
    return SearchResult(family=found.name, folder=Path(out_dir), results_dir=results_dir,
                        objective=trials_table.folder_objective(out_dir, found),
                        trials=trials_table.read_trials(Path(out_dir)),
                        objectives=tuple(tuple(o) for o in
                                         trials_table.run_record(out_dir).get("objectives") or ()))


def _flags(options: dict, results_dir: Path = Path("results")) -> list[str]:
    """Keywords as `lyrics-search` flags: name -> --name; True -> the flag alone; False or None -> left out; a
    list -> the flag repeated; a number of seconds for time_budget -> "<n>s". Shaping: set={"units": 32},
    range={"learning_rate": (1e-4, 1e-3)}, choices={"pooling": ["avg", "max"]}, and enqueue=[{...}, ...] (or a
    file's path)."""
    argv = []
    for name, value in options.items():
        if name in _NOT_FLAGS:
            raise UserError(f"{name} is an argument of search(), not an option")
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        if name in ("set", "range", "choices") and isinstance(value, dict):
            argv += shaping.flags_of(name, value)
            continue
        if name == "enqueue" and isinstance(value, (list, tuple)):
            argv += [flag, str(_saved("enqueue", "".join(json.dumps(row) + "\n" for row in value), ".jsonl",
                                      results_dir))]
            continue
        if name == "objective" and isinstance(value, (list, tuple)):  # several: a Pareto search
            argv += [flag, ",".join(value)]
        elif value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                argv += [flag, str(v)]
        elif name == "time_budget" and isinstance(value, (int, float)):
            argv += [flag, f"{value:g}s"]
        else:
            argv += [flag, str(value)]
    return argv


def _data_flags(flag: str, data, results_dir: Path) -> list[str]:
    """--data (or --test-data) for a path, or for a DataFrame the CSV it is saved as: results/_data/frame-<hash of
    its bytes>.csv, written once (atomically), so that the same frame is the same data to the resume guard."""
    if data is None:
        return []
    if isinstance(data, (str, Path)):
        return [flag, str(data)]
    if not hasattr(data, "to_csv"):
        raise UserError(f"{flag[2:]} must be a path or a pandas DataFrame, not {type(data).__name__}")
    text = io.StringIO()
    data.to_csv(text, index=False)
    return [flag, str(_saved("frame", text.getvalue(), ".csv", results_dir))]


def _saved(kind: str, body: str, suffix: str, results_dir: Path) -> Path:
    """results/_data/<kind>-<hash of body><suffix>, written once (atomically): the same content, the same file."""
    path = results_dir / "_data" / f"{kind}-{hashlib.sha256(body.encode()).hexdigest()[:16]}{suffix}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, body)
    return path
