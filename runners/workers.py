"""Worker processes of a search on this machine (--workers N), and Keras Tuner's chief/worker variables."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from lyrics_cifar_search.suite_common import UserError
from lyrics_cifar_search.suite_common.process import child_env

if TYPE_CHECKING:
    from lyrics_cifar_search.runners.engines import SearchConfig
    from lyrics_cifar_search.search_spaces import Family

logger = logging.getLogger(__name__)


def keras_tuner_role() -> Optional[str]:
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


def start_workers(family: Family, config: SearchConfig, extra_args: Sequence[str] = (),
                  env_of: Callable[[int], dict[str, str]] = lambda i: {}) -> list[subprocess.Popen]:
    """config.workers copies of this command, one GPU each where CUDA_VISIBLE_DEVICES lists several."""
    argv = config.argv if config.argv is not None else sys.argv[1:]
    child_argv = [a for a in argv if a != "--fresh"] + list(extra_args)
    gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    procs = []
    for i in range(config.workers):
        # a worker holds no lock: it dies with this process (killed -9 or not), never runs on beside a re-run
        env = {**os.environ, **env_of(i), "SEARCH_SUITE_WORKER_INDEX": str(i), **child_env(signal.SIGKILL)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        procs.append(subprocess.Popen([sys.executable, "-m", "lyrics_cifar_search.runners.search", *child_argv],
                                      env=env))
    config.stop.workers[:] = procs  # a SIGTERM to this process is passed on to them
    logger.info(f"{family.name}: {config.workers} workers started (processes {', '.join(str(p.pid) for p in procs)})")
    return procs
