"""Several workers on one study: local processes on SQLite, and on a real PostgreSQL server."""

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis.best_model import load_best
from runners.search import cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]


def check_exactly_once(res, family, total):
    t = pd.read_csv(res / family / "trials.csv")
    assert len(t) == total and t["trial_id"].is_unique and (t["status"] == "COMPLETE").all()
    assert t["is_baseline"].sum() == 1
    assert load_best(family, res).meta["metrics"]["val_accuracy"] == t["val_accuracy"].max()
    return t


def test_local_workers_share_one_study(tmp_path, small_lyrics):
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "12",
                "--workers", "2", *FAST]) == 0
    check_exactly_once(res, "lyrics_tfidf_logreg", 12)


def test_keras_families_refuse_storage(tmp_path, small_lyrics, capsys):
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(tmp_path), "--storage",
                "sqlite:///x.db"]) == 2
    assert "chief" in capsys.readouterr().err


# --- Keras Tuner: a chief and workers, as on separate hosts but on loopback ---
KERAS = ["lyrics_lstm", "--epochs", "1", *FAST]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keras_process(role, port, small_lyrics, res, trials, env=None):
    env = {**os.environ, "KERASTUNER_TUNER_ID": role, "KERASTUNER_ORACLE_IP": "127.0.0.1",
           "KERASTUNER_ORACLE_PORT": str(port), **(env or {})}
    return subprocess.Popen([sys.executable, str(ROOT / "runners" / "search.py"), *KERAS, "--data", str(small_lyrics),
                             "--results-dir", str(res), "--max-trials", str(trials)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _trials_run_by(output, worker):
    """Trial ids a worker reports as finished in its output."""
    return re.findall(rf"^\[lyrics_lstm {worker}\] trial (\d+) COMPLETE", output, flags=re.M)


def test_keras_tuner_chief_and_two_workers(tmp_path, small_lyrics):
    res, port = tmp_path / "r", _free_port()
    chief = _keras_process("chief", port, small_lyrics, res, 6)
    workers = [_keras_process(f"worker{i}", port, small_lyrics, res, 6) for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in [*workers, chief]]
    assert [p.returncode for p in [*workers, chief]] == [0, 0, 0], outputs[2][-3000:]
    t = check_exactly_once(res, "lyrics_lstm", 6)
    ran = [_trials_run_by(out, f"worker{i}") for i, out in enumerate(outputs[:2])]
    assert all(ran), "each worker ran trials"
    assert sorted(int(x) for x in ran[0] + ran[1]) == sorted(t["trial_id"])  # every trial run once, by one worker
    assert "trial 6 of 6" in outputs[2]  # the chief's progress


def test_keras_workers_flag_runs_a_chief_here_and_resumes(tmp_path, small_lyrics):
    res = tmp_path / "r"
    args = [*KERAS, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "5", "--workers", "2"]
    assert cli(args) == 0
    before = (res / "lyrics_lstm" / "trials.csv").read_bytes()
    check_exactly_once(res, "lyrics_lstm", 5)
    assert cli(args) == 0  # the same command again: the search is complete, nothing runs
    assert (res / "lyrics_lstm" / "trials.csv").read_bytes() == before
    assert cli([*args[:-4], "--max-trials", "6"]) == 0  # a larger total tops it up, through the workers again
    check_exactly_once(res, "lyrics_lstm", 6)


def test_a_chief_that_cannot_listen_says_so(tmp_path, small_lyrics, monkeypatch, capsys):
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "not-a-port")
    assert cli([*KERAS, "--data", str(small_lyrics), "--results-dir", str(tmp_path), "--max-trials", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the chief cannot listen on 127.0.0.1:not-a-port") and not any("Traceback" in line for line in err)


def test_keras_workers_all_dying_is_an_error_and_resumable(tmp_path, small_lyrics, monkeypatch, capsys):
    res = tmp_path / "r"
    args = [*KERAS, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3", "--workers", "2"]
    monkeypatch.setenv("SEARCH_SUITE_CRASH_AT", "trial-started")  # inherited by the workers: each dies in its trial
    assert cli(args) == 2
    assert "every worker exited (exit codes [137, 137])" in capsys.readouterr().err
    monkeypatch.delenv("SEARCH_SUITE_CRASH_AT")
    assert cli(args) == 0  # the same command resumes; the two cut-short trials run again
    check_exactly_once(res, "lyrics_lstm", 3)


def test_a_killed_keras_workers_trial_goes_to_another(tmp_path, small_lyrics):
    res, port = tmp_path / "r", _free_port()
    chief = _keras_process("chief", port, small_lyrics, res, 5)
    dead = _keras_process("worker0", port, small_lyrics, res, 5, env={"SEARCH_SUITE_CRASH_AT": "trial-started"})
    assert dead.wait(timeout=300) == 137  # killed in the middle of its first trial
    alive = _keras_process("worker1", port, small_lyrics, res, 5)
    out_alive, out_chief = alive.communicate(timeout=600)[0], chief.communicate(timeout=600)[0]
    assert alive.returncode == 0 and chief.returncode == 0, out_chief[-3000:]
    handed = re.findall(r"worker0 silent for \d+ s; trial (\d+) goes to the next worker", out_chief)
    assert len(handed) == 1
    t = check_exactly_once(res, "lyrics_lstm", 5)
    assert sorted(int(x) for x in _trials_run_by(out_alive, "worker1")) == sorted(t["trial_id"])
    assert int(handed[0]) in set(t["trial_id"])


def _as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on loopback (Debian's postgresql package)."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if not initdb:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run the server as")
    pytest.importorskip("psycopg")  # the `postgres` extra's driver
    bindir = Path(initdb).parent
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    os.chown(root, pw.pw_uid, pw.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres"]), check=True,
                   capture_output=True)
    pg_ctl = shutil.which("pg_ctl") or str(bindir / "pg_ctl")
    subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                                 f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    try:
        createdb = shutil.which("createdb") or str(bindir / "createdb")
        subprocess.run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna"], check=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def worker(small_lyrics, res, url, trials, env=None):
    return subprocess.run([sys.executable, str(ROOT / "runners" / "search.py"), "lyrics_tfidf_logreg", "--data",
                           str(small_lyrics), "--results-dir", str(res), "--max-trials", str(trials),
                           "--storage", url, "--worker", *FAST],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_two_workers_on_postgresql(tmp_path, small_lyrics, postgres_url):
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "10",
                "--workers", "2", "--storage", postgres_url, *FAST]) == 0
    check_exactly_once(res, "lyrics_tfidf_logreg", 10)


def test_a_killed_workers_trial_is_retried(tmp_path, small_lyrics, postgres_url):
    url = postgres_url.replace("/optuna", "/postgres")  # a study of its own
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "2",
                "--storage", url, *FAST]) == 0
    # this worker dies in the middle of its first trial, leaving it RUNNING
    dead = worker(small_lyrics, res, url, 5, env={"SEARCH_SUITE_CRASH_AT": "trial-started"})
    assert dead.returncode == 137
    import optuna
    study = optuna.load_study(study_name="lyrics_tfidf_logreg", storage=url)
    stale = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(stale) == 1
    time.sleep(16)  # heartbeat every 5 s, grace 15 s: the dead worker's trial is now stale
    alive = worker(small_lyrics, res, url, 5)
    assert alive.returncode == 0, alive.stderr[-2000:]
    study = optuna.load_study(study_name="lyrics_tfidf_logreg", storage=url)
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == stale[0].number]
    assert len(retried) == 1 and retried[0].params == stale[0].params
    assert retried[0].state == optuna.trial.TrialState.COMPLETE
    t = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert len(t) == 5 and stale[0].number not in set(t["trial_id"]) and (t["status"] == "COMPLETE").all()


FUSED_CHECK = """
import numpy as np, keras
from runners import keras_engine
rng = np.random.default_rng(0)
n = 330  # 10 full batches of 32 and a smaller last one
x = rng.random((n, 20), dtype=np.float32); y = rng.integers(0, 5, n)
runs = {}
for fuse in (False, True):
    keras.backend.clear_session(); keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.Dropout(0.3),
                          keras.layers.Dense(5, activation="softmax")])
    m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    k = keras_engine.fuse_train_steps(m, n, 32) if fuse else 1
    h = m.fit(x, y, batch_size=32, epochs=3, verbose=0, validation_data=(x[:50], y[:50]))
    runs[fuse] = (k, m.get_weights(), h.history)
assert runs[True][0] == 10, runs[True][0]
assert runs[False][2] == runs[True][2], (runs[False][2], runs[True][2])
assert all(np.array_equal(a, b) for a, b in zip(runs[False][1], runs[True][1]))
print("fused == unfused")
"""


def test_fused_train_steps_give_keras_own_updates():
    """JAX: k steps in one lax.scan (the suite's GPU path) = Keras's own loop, weight for weight."""
    pytest.importorskip("jax")
    out = subprocess.run([sys.executable, "-c", FUSED_CHECK], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and "fused == unfused" in out.stdout, out.stderr[-3000:]


GRAPH_CHECK = """
import numpy as np, keras, torch
from runners import keras_engine
torch.backends.cudnn.deterministic = True
rng = np.random.default_rng(0)
n = 330  # 10 full batches of 32 and a smaller last one
x = rng.random((n, 8, 8, 3), dtype=np.float32); y = rng.integers(0, 5, n)
runs = {}
for graphed in (False, True):
    keras.backend.clear_session(); keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(2),
                          keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax")])
    m.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    f = keras_engine.graph_train_steps(m) if graphed else None
    h = m.fit(x, y, batch_size=32, epochs=3, verbose=0, validation_data=(x[:50], y[:50]))
    runs[graphed] = (f is not None and f.captured, m.get_weights(), h.history)
assert runs[True][0], "no graph was recorded"
for key, values in runs[False][2].items():
    assert np.allclose(values, runs[True][2][key], rtol=1e-4, atol=1e-6), (key, values, runs[True][2][key])
assert all(np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(runs[False][1], runs[True][1]))
print("graphed == eager")
"""


def test_cuda_graph_train_steps_give_keras_own_updates():
    """PyTorch on a GPU: a recorded and replayed train step (the suite's path there) = Keras's own loop.
    Needs a CUDA GPU (bench/gpu_figures.sh runs it on one); skipped elsewhere."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", GRAPH_CHECK], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, env={**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": path})
    assert out.returncode == 0 and "graphed == eager" in out.stdout, out.stderr[-3000:]


def test_a_finished_trial_leaves_no_tensorflow_graph_behind(tmp_path):
    """TensorFlow keeps each traced train step's graph (and the model's variables) in a global gradient
    registry; the engine drops them between trials, so memory does not grow by a model per trial."""
    import gc
    import weakref

    import keras
    import keras_tuner as kt
    import numpy as np

    from runners import keras_engine
    from runners.search import Prepared
    from search_spaces import cifar_cnn

    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow registry")
    from tensorflow.python.framework import func_graph

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 32, 32, 3), dtype=np.float32), rng.integers(0, 4, 64)
    prepared = Prepared(x, y, x[:16], y[:16], list("abcd"), {"n_classes": 4}, {}, {})

    def trial(i):
        hm = cifar_cnn.HyperModel({"n_classes": 4})
        return keras_engine.train(cifar_cnn, hm, kt.HyperParameters(), prepared, epochs=1, seed=i,
                                  history_path=tmp_path / f"h{i}.csv")[0]

    model = trial(0)
    first = [weakref.ref(m) for m in [model, model.optimizer]]
    del model
    gc.collect()
    first_graphs = [weakref.ref(o) for o in gc.get_objects() if isinstance(o, func_graph.FuncGraph)]
    assert first_graphs  # the first trial traced its train and validation steps
    trial(1)
    gc.collect()
    assert all(r() is None for r in first + first_graphs), \
        f"{sum(r() is not None for r in first_graphs)} of the first trial's graphs are still alive"
