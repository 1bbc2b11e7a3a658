"""Process settings for a search, applied by the entry points, never on import.

`python runners/search.py`, the console scripts and the scripts that train
in-process call `tune_this_process()` first thing. It sets environment
variables, and where glibc's allocator must be set it starts the same command
again with them (glibc reads GLIBC_TUNABLES only when a process starts, which
is also why nothing here depends on what was imported before):

- TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1: TensorFlow's oneDNN kernels on CPU
  otherwise allocate from a pool that never gives memory back, so a search's
  memory would step up to its largest trial and stay there.
- GLIBC_TUNABLES, TensorFlow backend only: one heap (arena_max=1) that keeps
  freed blocks up to 1 GB for reuse (mmap_threshold, trim_threshold), so the
  buffers of every training step are not mapped and faulted in afresh.
  malloc_trim between trials (runners/keras/trial.py) still hands back what a
  finished trial freed. On JAX the same setting made fits slower, so it is
  left alone there. bench/README.md has the measurements.
- TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's informational start-up lines.

A value the user sets (GLIBC_TUNABLES, MALLOC_*, TF_*) wins.
"""

import json
import os
import platform
import sys

TUNABLES = ("glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=1073741824:"
            "glibc.malloc.trim_threshold=1073741824")
RELAUNCHED = "SEARCH_SUITE_PROCESS_TUNED"  # set in the started-again process, so it never loops


def backend_keras_will_load(env=os.environ):
    """Found as Keras finds it (keras/src/backend/config.py), without importing Keras."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if "KERAS_BACKEND" in env:
        return env["KERAS_BACKEND"]
    home = os.path.expanduser("~")
    keras_dir = env.get("KERAS_HOME") or os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(keras_dir, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):  # no file, or not a JSON object: Keras's default
        return "tensorflow"


def settings(env=os.environ):
    """The environment variables a search process should have that `env` lacks."""
    wanted = {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    user_set_malloc = "GLIBC_TUNABLES" in env or any(k.startswith("MALLOC_") for k in env)
    if (not user_set_malloc and platform.libc_ver()[0] == "glibc"
            and backend_keras_will_load(env) == "tensorflow"):
        wanted["GLIBC_TUNABLES"] = TUNABLES
    return {k: v for k, v in wanted.items() if k not in env}


def tune_this_process():
    """Set the search's process settings; start this command again if glibc must see them from the start.

    Call it first in an entry point, before any other work (it may replace the process, same pid).
    """
    missing = settings()
    os.environ.update(missing)
    if "GLIBC_TUNABLES" in missing and not os.environ.get(RELAUNCHED) and getattr(sys, "orig_argv", None):
        os.environ[RELAUNCHED] = "1"
        sys.stdout.flush(), sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
