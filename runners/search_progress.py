"""What a running search shares with its user: progress lines, Ctrl-C, the time budget."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from typing import Any, Optional, Sequence

from lyrics_cifar_search.runners import trials_table
from lyrics_cifar_search.suite_common import log
from lyrics_cifar_search.suite_common.status import ENDED

logger = logging.getLogger(__name__)

__all__ = ["Stop", "Progress", "log", "resuming"]


def resuming(family: str, finished: int, max_trials: int) -> None:
    """The line either engine starts a resumed search with: its trials already ended (complete, pruned or
    failed; not an attempt cut short, which runs again) and the total it runs up to."""
    log(f"resuming {family}: {finished} finished trials on record, running up to {max_trials} in all")


class Stop:
    """When a search stops. The command line makes one for each run and hands it to the engine (in its
    SearchConfig); the engines ask it between trials (and, with hard=True, between epochs).

    - requested: Ctrl-C or SIGTERM (the CLI's signal handler calls request()): stop after the trial in progress;
    - out_of_time(): the --time-budget deadline (a time.time() value, or None) has passed: no new trial starts;
      with hard (--time-budget-hard) the trial in progress stops at its next epoch end too;
    - workers: this search's worker processes (subprocess.Popen), to pass a SIGTERM on to.
    """

    def __init__(self, deadline: Optional[float] = None, hard: bool = False) -> None:
        self.deadline, self.hard = deadline, hard
        self.workers: list[subprocess.Popen] = []
        self._requested = threading.Event()  # set from a signal handler, read by the engines' threads

    def request(self) -> None:
        self._requested.set()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline


class Progress:
    """One line per finished trial, with the ids trials.csv uses:

    [lyrics_lstm] trial 3 COMPLETE val_accuracy 0.6458 | lstm_units=64 learning_rate=0.00312 | best 0.6528
    (trial 1) | 4 of 10 done, 0:01:02 elapsed, ~0:01:33 left

    The hyperparameters shown are those that differ from the baseline (trial 0, the earlier study's model).
    """

    def __init__(self, family: str, total: int, objective: tuple[str, str],
                 reference: Optional[dict[str, Any]] = None) -> None:
        self.family, self.total = family, total
        self.objective, self.direction = objective[0], objective[1]
        self.reference = reference  # trials_table.chance(): what learning nothing scores, with its noise
        self.start = time.time()
        self.finished_here = 0
        self.said_what_lines_show = False

    def trial_done(self, rows: Sequence[dict[str, Any]], trial_id: int | str, status: str, score: Optional[float],
                   baseline: Optional[dict[str, Any]] = None) -> None:
        """The line for a trial that has just ended, from trials.csv's rows as just written (record.write_table):
        how many trials have ended, the best of them, and what this one changed from the baseline's values."""
        done = [r for r in rows if r["status"] in ENDED]
        n_done = len(done)
        best_row = trials_table.best_of(done, (self.objective, self.direction))
        best, best_id = (best_row[self.objective], best_row["trial_id"]) if best_row else (None, None)
        row = next((r for r in rows if r["trial_id"] == trial_id), None)
        params = {k[3:]: v for k, v in row.items() if k.startswith("hp_") and v is not None} if row else None
        self.finished_here += 1
        elapsed = time.time() - self.start
        left = max(self.total - n_done, 0) * elapsed / self.finished_here
        score_s = f"{self.objective} {score:.4f}" if score is not None else "no score"
        parts = [f"[{self.family}] trial {trial_id} {status} {score_s}"]
        if params is not None and baseline is not None:
            if not self.said_what_lines_show:  # once, before the first line that shows them
                self.said_what_lines_show = True
                logger.info(f"[{self.family}] each trial's line names the hyperparameters it changes from the "
                            "baseline (trial 0: every default); trials.csv holds them all")
            parts.append(changes(params, baseline))
        parts.append(f"best {best:.4f} (trial {best_id})" if best is not None else "no finished trial yet")
        if best is not None and self.reference and trials_table.learned_nothing(best, self.reference, self.direction):
            parts.append(f"none beyond {self.reference['what']} ({self.reference['value']:.4f}) yet")
        parts.append(f"{n_done} of {self.total} done, {_hms(elapsed)} elapsed"
                     + (f", ~{_hms(left)} left" if n_done < self.total else ""))
        logger.info(" | ".join(parts))


def changes(params: dict[str, Any], baseline: dict[str, Any]) -> str:
    """The hyperparameters that differ from the baseline's, compactly ('baseline' if none)."""
    def short(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    diff = [f"{k}={short(v)}" for k, v in params.items() if baseline.get(k, v) != v or k not in baseline]
    return " ".join(diff) if diff else "baseline"


def _hms(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
