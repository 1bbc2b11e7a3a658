"""Process settings: nothing changes on import; the entry points set them, before any framework starts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses or real trainings: `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]

IMPORT_EVERYTHING = r"""
import ctypes, os, sys, warnings
import pandas, sklearn.linear_model  # noqa: F401 - already imported by whoever imports the suite
import keras, keras_tuner, optuna  # noqa: F401 - the frameworks set variables of their own (TF2_BEHAVIOR, ...)
calls = []
class Recording(ctypes.CDLL):
    def __getattr__(self, name):
        calls.append(name)
        return super().__getattr__(name)
ctypes.CDLL = Recording
warnings.simplefilter("error")
before, stdout = dict(os.environ), sys.stdout
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.engine import conditions
patched = kt_utils.save_json, conditions.Parent.to_proto
import importlib, pkgutil
for package in ("lyrics_cifar_search." + name for name in ("suite_common", "studies", "study_data", "search_spaces",
                                                           "runners", "analysis")):
    importlib.import_module(package)
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        importlib.import_module(info.name)
from lyrics_cifar_search import search_spaces
search_spaces.list_families()
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
assert sys.stdout is stdout
assert (kt_utils.save_json, conditions.Parent.to_proto) == patched  # the engine patches when a search starts
assert "mallopt" not in calls and "malloc_info" not in calls, calls
print("ok", len(sys.modules))
"""


def test_importing_any_package_changes_no_process_state():
    """Each package and module, imported after pandas and scikit-learn with warnings as errors: no warning,
    no environment variable set, no mallopt call, sys.stdout and Keras Tuner left alone."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith(("MALLOC_", "TF_"))}
    out = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**env, "KERAS_BACKEND": "tensorflow"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok"), out.stdout


def glibc_defaults_env(**env):
    """This environment without the malloc settings of the shell running the tests: glibc's defaults to start
    from (a user's GLIBC_TUNABLES or MALLOC_* makes the suite leave malloc alone)."""
    ours = {k: v for k, v in os.environ.items()
            if k not in ("GLIBC_TUNABLES", "SEARCH_SUITE_PROCESS_TUNED") and not k.startswith("MALLOC_")}
    return {**ours, "KERAS_BACKEND": "tensorflow", **env}


LARGE_BUFFERS_IN_THREADS = """
import ctypes, resource, sys, threading
if sys.argv[1] == "entry-point":
    from lyrics_cifar_search.suite_common.process import tune_this_process
    tune_this_process()  # as the CLI does: may start this command again with the settings
import pandas  # noqa: F401 - its pyarrow starts a thread that takes a heap of its own
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
size = 128 << 20  # above glibc's largest automatic mmap threshold (32 MB), as cifar_cnn's 67 MB at batch 256

def steps():  # like a training step's buffers: allocated, written, freed, in a worker thread
    for _ in range(10):
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)

before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
workers = [threading.Thread(target=steps) for _ in range(4)]  # like TensorFlow's thread pool
for w in workers:
    w.start()
for w in workers:
    w.join()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_entry_points_settings_reuse_large_buffers_instead_of_faulting_them_in_again():
    """With TensorFlow's oneDNN pool off (for memory), glibc's malloc serves its buffers; with the entry
    points' settings it reuses large freed blocks, whatever was imported after: 4 threads' 10 steps each fault
    their pages in about once, not 10 times. A malloc setting the user made wins; other backends keep glibc's
    defaults."""
    def page_faults(mode, **env):
        out = subprocess.run([sys.executable, "-c", LARGE_BUFFERS_IN_THREADS, mode], capture_output=True,
                             text=True, timeout=120, cwd=ROOT, env=glibc_defaults_env(**env))
        assert out.returncode == 0, out.stderr[-2000:]
        return int(out.stdout.split()[-1])

    blocks, pages = 4, (128 << 20) // 4096  # 4 threads' blocks alive at once, pages in each
    every_step = 10 * blocks * pages
    plain = page_faults("plain")
    tuned = page_faults("entry-point")
    users = page_faults("entry-point", MALLOC_MMAP_THRESHOLD_="131072")
    jax = page_faults("entry-point", KERAS_BACKEND="jax")
    assert plain > 0.75 * every_step, plain  # glibc's default maps each block afresh
    assert tuned < 2 * blocks * pages, (tuned, plain)
    assert users > 0.75 * every_step, users
    assert jax > 0.75 * every_step, jax  # TensorFlow's setting only


SETTINGS_SEEN = """
import os, runpy, sys

sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("GLIBC_TUNABLES=" + os.environ.get("GLIBC_TUNABLES", ""), "ONEDNN=" +
          os.environ.get("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", ""), "pid=" + str(os.getpid()), flush=True)
"""


@pytest.mark.parametrize("script, args", [("runners/search.py", ["--list"]), ("analysis/compare.py", ["--help"])])
def test_the_entry_points_apply_the_settings(script, args):
    """The CLI and the scripts that train in-process start with the settings (the same process id: the
    command is started again in place)."""
    out = subprocess.run([sys.executable, "-c", SETTINGS_SEEN, str(ROOT / script), *args], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, env=glibc_defaults_env())
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert "GLIBC_TUNABLES=glibc.malloc.arena_max=1" in last and "ONEDNN=1" in last, last


def imported_modules(importtime_stderr):
    return {line.split("|")[-1].strip() for line in importtime_stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--list"], ["lyrics_nope"], ["lyrics_lstm", "--data", "/nonexistent"]])
def test_listing_help_and_bad_input_start_no_framework(args):
    out = subprocess.run([sys.executable, "-X", "importtime", "runners/search.py", *args], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode in (0, 2), out.stderr[-2000:]
    modules = imported_modules(out.stderr)
    assert not modules & {"tensorflow", "keras", "keras_tuner", "jax", "torch"}, args
    if "--data" not in args:  # answered before any data library loads, too (a wrong name: well under a second)
        assert "pandas" not in modules, args


def test_a_scikit_learn_search_imports_no_tensorflow_and_a_keras_search_prints_no_framework_noise(tmp_path,
                                                                                                small_lyrics):
    common = ["--data", str(small_lyrics), "--results-dir", str(tmp_path), "--seq-len", "30", "--vocab-size", "300"]
    sk = subprocess.run([sys.executable, "-X", "importtime", "runners/search.py", "lyrics_tfidf_logreg",
                         "--max-trials", "2", *common], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert sk.returncode == 0, sk.stderr[-2000:]
    assert not imported_modules(sk.stderr) & {"tensorflow", "keras", "keras_tuner"}
    demo = subprocess.run([sys.executable, "-X", "importtime", "analysis/demo.py", "--results-dir", str(tmp_path),
                           "--lyrics", "love the night", "--family", "lyrics_tfidf_logreg"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert demo.returncode == 0 and "lyrics_tfidf_logreg" in demo.stdout, demo.stderr[-2000:]
    assert not imported_modules(demo.stderr) & {"tensorflow", "keras", "keras_tuner"}  # the scikit-learn demo
    nn = subprocess.run([sys.executable, "runners/search.py", "lyrics_lstm", "--max-trials", "1", "--epochs", "1",
                         *common], capture_output=True, text=True, timeout=300, cwd=ROOT,
                        env={k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")})
    assert nn.returncode == 0, nn.stderr[-2000:]
    lines = (nn.stdout + nn.stderr).splitlines()
    noise = [line for line in lines if any(word in line for word in (
        "absl", "oneDNN", "cuInit", "cuda drivers", "retracing", "cpu_feature_guard", "rebuild TensorFlow"))]
    assert noise == [], noise
    assert any(line.startswith("[lyrics_lstm] trial 0 COMPLETE") for line in lines)  # the rest gets through
    # and with --verbose nothing is filtered
    from lyrics_cifar_search.suite_common import process
    argv, sys.argv = sys.argv, ["search.py", "--verbose"]
    try:
        process.quiet_frameworks()
        assert process._filter == {}
    finally:
        sys.argv = argv