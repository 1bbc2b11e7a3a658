"""The command line (search.py) and the two engines behind it.

Importing this package sets how the process allocates memory. It has to come
before TensorFlow starts its threads, and before pandas (which imports
pyarrow, whose thread takes a glibc heap of its own: TensorFlow's threads
would then share that capped heap, and their large blocks would be mapped
afresh again; the overhead bench's search had 2.0 million page faults with
pandas imported first, 0.8 million without). search.py imports it first, so
do the scripts that train in-process, and every engine module is imported
through it.

- TensorFlow's oneDNN kernels on CPU otherwise allocate from a pool that never
  gives memory back: a search's resident memory would step up to its largest
  trial and stay there (bench/memory_growth.py, lyrics_lstm, 20 trials: 1.42x
  the memory after trial 2; 1.04x with TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1).
  TensorFlow reads it at its first oneDNN operation. Other backends ignore it.
- glibc's malloc then serves those buffers, but by default it gives every
  thread a heap of its own, at most 64 MB each, and maps large blocks afresh
  and unmaps them when freed: every training step faulted its buffers in
  again (cifar_cnn: 5-9x the page faults of the pool, twice its system CPU
  time). One heap that keeps freed blocks up to 1 GB for reuse brings that
  near the pool's; malloc_trim between trials (runners/keras_engine.py)
  still hands back what a finished trial freed. Why so large: cifar_cnn at
  batch size 256 allocates 67 MB buffers every step; a 64 MB limit mapped
  them afresh each time, 2.2 million page faults in a 2-epoch trial (19.4 s)
  against 0.3 million (12.4 s) with 1 GB. TensorFlow only: on JAX the same
  setting made bare cifar_cnn fits 5-14% slower (its page faults, about
  7 million either way, come from elsewhere).

A value the user sets (TF_ONEDNN_USE_SYSTEM_ALLOCATOR, GLIBC_TUNABLES,
MALLOC_ARENA_MAX, ...) wins.
"""

import ctypes
import json
import os
import sys
import warnings

os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")


def _backend_keras_will_load():
    """Found as Keras finds it (keras/src/backend/config.py), without importing Keras: that would start
    TensorFlow's threads, too early for the setting below."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if "KERAS_BACKEND" in os.environ:
        return os.environ["KERAS_BACKEND"]
    home = os.path.expanduser("~")
    keras_dir = os.environ.get("KERAS_HOME") or os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(keras_dir, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):  # no file, or not a JSON object: Keras's default
        return "tensorflow"


def _one_heap_reusing_large_blocks():
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        return
    if _backend_keras_will_load() != "tensorflow":
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's malloc.h
    mallopt(M_ARENA_MAX, 1)  # glibc reads it when a second thread first allocates
    mallopt(M_MMAP_THRESHOLD, 1 << 30)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
    if _glibc_heaps(libc) > 1:
        # Too late for part of it: a thread started earlier holds a heap of its own, and TensorFlow's threads
        # will be shared out over the heaps there are. Nothing can undo that in this process, so say so.
        warnings.warn("runners was imported after a module that started threads (pandas, scikit-learn, "
                      "TensorFlow, ...), so TensorFlow's threads will share heaps that map large buffers afresh "
                      "every step, which slows training; import runners before them (runners/__init__.py)",
                      RuntimeWarning, stacklevel=2)


def _glibc_heaps(libc):
    """How many heaps (arenas) glibc's malloc has made so far, from malloc_info's report; 0 if unknown."""
    for name in ("tmpfile", "malloc_info", "fflush", "fileno", "fclose"):
        if not hasattr(libc, name):
            return 0
    libc.tmpfile.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fflush.argtypes = libc.fileno.argtypes = libc.fclose.argtypes = [ctypes.c_void_p]
    report = libc.tmpfile()
    if not report:
        return 0
    try:
        if libc.malloc_info(0, report) != 0 or libc.fflush(report) != 0:
            return 0
        fd = libc.fileno(report)
        os.lseek(fd, 0, os.SEEK_SET)
        text = b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
    finally:
        libc.fclose(report)
    return text.count(b"<heap nr=")


_one_heap_reusing_large_blocks()
