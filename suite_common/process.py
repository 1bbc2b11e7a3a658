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
  malloc_trim between trials (runners/keras_search/trial.py) still hands back what a
  finished trial freed. On JAX the same setting made fits slower, so it is
  left alone there. bench/README.md has the measurements.
- TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's informational start-up lines.
- What TensorFlow, absl and CUDA still print (absl's "All log messages before
  absl::InitializeLog()", "Could not find cuda drivers", "failed call to
  cuInit" on a CPU machine, CPU-instruction notes, retracing warnings) is
  dropped from stderr by `quiet_frameworks`, unless the command has --verbose:
  the frameworks write these lines from C++ to file descriptor 2, so the
  filter sits on that descriptor, installed before any framework starts.

A value the user sets (GLIBC_TUNABLES, MALLOC_*, TF_*) wins.
"""

import atexit
import ctypes
import json
import os
import platform
import re
import sys
import threading
from typing import Mapping

PARENT = "SEARCH_SUITE_DIE_WITH"  # "<parent pid>:<signal>": set for a child that must not outlive its parent


def child_env(sig: int) -> dict[str, str]:
    """Environment entries for a child process that must not outlive this one (it arranges that itself, in
    `die_with_parent`, because a preexec_fn is not safe in a process with threads)."""
    return {PARENT: f"{os.getpid()}:{int(sig)}"}


def die_with_parent() -> None:
    """In a child started with child_env: the kernel sends it the signal when its parent exits (Linux's
    PR_SET_PDEATHSIG; kept across the exec of tune_this_process). A parent already gone: the signal now."""
    value = os.environ.pop(PARENT, "")
    if not re.fullmatch(r"\d+:\d+", value):
        return
    parent, sig = map(int, value.split(":"))
    try:
        if ctypes.CDLL(None, use_errno=True).prctl(1, sig) != 0:  # 1: PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError):  # not Linux: a worker outlives a killed parent there
        return
    if os.getppid() != parent:  # the parent died before the setting took
        os.kill(os.getpid(), sig)


TUNABLES = ("glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=1073741824:"
            "glibc.malloc.trim_threshold=1073741824")
RELAUNCHED = "SEARCH_SUITE_PROCESS_TUNED"  # set in the started-again process, so it never loops


def backend_keras_will_load(env: Mapping[str, str] = os.environ) -> str:
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


def settings(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment variables a search process should have that `env` lacks."""
    wanted = {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    user_set_malloc = "GLIBC_TUNABLES" in env or any(k.startswith("MALLOC_") for k in env)
    if (not user_set_malloc and platform.libc_ver()[0] == "glibc"
            and backend_keras_will_load(env) == "tensorflow"):
        wanted["GLIBC_TUNABLES"] = TUNABLES
    return {k: v for k, v in wanted.items() if k not in env}


def tune_this_process() -> None:
    """Set the search's process settings; start this command again if glibc must see them from the start.

    Call it first in an entry point, before any other work (it may replace the process, same pid).
    """
    missing = settings()
    os.environ.update(missing)
    if "GLIBC_TUNABLES" in missing and not os.environ.get(RELAUNCHED) and getattr(sys, "orig_argv", None):
        os.environ[RELAUNCHED] = "1"
        sys.stdout.flush(), sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    quiet_frameworks()  # in the process that runs (a filter thread would not survive the exec)


NOISE = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
                   rb"|[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"  # absl's C++ log lines
                   rb"|To enable the following instructions:"
                   rb"|WARNING:tensorflow:|WARNING:absl:"
                   rb"|.*oneDNN custom operations are on"
                   rb"|.*rebuild TensorFlow with the appropriate compiler flags)")
_filter: dict = {}


def quiet_frameworks() -> None:
    """Drop the frameworks' start-up and retracing lines from this process's stderr (file descriptor 2, where
    C++ writes them); everything else goes through unchanged, line by line. Call before any framework starts."""
    if _filter or "--verbose" in sys.argv:
        return
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        pending = b""
        while chunk := os.read(read_end, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
            if kept:
                os.write(real, kept)
        if pending and not NOISE.match(pending):
            os.write(real, pending)
        os.close(read_end)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    _filter.update(real=real, thread=thread)
    atexit.register(flush_stderr)


def flush_stderr(timeout: float = 2.0) -> None:
    """Put the real stderr back and let the filter pass on what it still holds (at exit, or before a
    deliberate os._exit)."""
    if not _filter:
        return
    sys.stderr.flush()
    os.dup2(_filter["real"], 2)  # closes the pipe's last writer in this process: the filter reads to its end
    _filter["thread"].join(timeout)
    _filter.clear()
