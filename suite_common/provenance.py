"""Where a result came from: when, by which command, with which package versions, code and machine."""

import datetime
import importlib.metadata
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from lyrics_cifar_search.suite_common import masked

PACKAGES = ("keras", "keras-tuner", "optuna", "scikit-learn", "tensorflow", "jax", "torch", "numpy")
ROOT = Path(__file__).resolve().parents[1]


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> Optional[str]:
    """The checkout's commit (with '+changes' if files differ from it), or None outside a git checkout."""
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        return None
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+changes" if dirty else "")) or None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10).stdout
            gpus = [g.strip() for g in out.splitlines() if g.strip()]
        except (OSError, subprocess.SubprocessError):
            pass
    return {"host": platform.node(), "os": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "gpus": gpus}


def provenance(keras_backend: Optional[str] = None) -> dict[str, Any]:
    """What a run records about itself (best/meta.json, search.json, the report)."""
    command = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    versions = {"python": platform.python_version(), **{p: v for p in PACKAGES if (v := _version(p))}}
    if keras_backend:
        versions["keras_backend"] = keras_backend
    return {"started_at": now(), "command": masked(shlex.join(command)), "cwd": os.getcwd(), "versions": versions,
            "git_commit": git_commit(), "machine": machine()}
