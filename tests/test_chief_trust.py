"""The Keras Tuner chief's trust boundary (issue 28): it serves whoever reaches its port, so a result marked
complete without its score is refused and the trial goes to a real worker. In a file of its own so that
pytest-xdist's loadfile runs it beside test_workers.py."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keras_process(role, port, small_lyrics, res, trials):
    env = {**os.environ, "KERASTUNER_TUNER_ID": role, "KERASTUNER_ORACLE_IP": "127.0.0.1",
           "KERASTUNER_ORACLE_PORT": str(port)}
    return subprocess.Popen([sys.executable, str(ROOT / "runners" / "search.py"), "lyrics_lstm", "--epochs", "1",
                             "--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300", "--data",
                             str(small_lyrics), "--results-dir", str(res), "--max-trials", str(trials)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_a_forged_result_without_a_score_is_refused_by_the_chief(tmp_path, small_lyrics):
    """The chief serves whoever reaches its port (README, "Scaling out"): a client that takes the baseline trial
    and ends it "complete" with no score is refused, and the trial goes to a real worker once the forger is
    silent, so the search still ends with a scored baseline."""
    import time

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.engine import trial as trial_module
    res, port = tmp_path / "r", _free_port()
    chief = _keras_process("chief", port, small_lyrics, res, 2)
    stub = protos.get_service_grpc().OracleStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    deadline = time.time() + 120
    while True:  # the chief starts listening once its data is ready
        try:
            response = stub.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id="forger"), timeout=5)
            break
        except grpc.RpcError:
            assert time.time() < deadline, "the chief never listened"
            time.sleep(0.5)
    forged = trial_module.Trial.from_proto(response.trial)
    forged.status = trial_module.TrialStatus.COMPLETED  # and no metrics at all
    with pytest.raises(grpc.RpcError) as refused:
        stub.EndTrial(protos.get_service().EndTrialRequest(trial=forged.to_proto()), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    worker = _keras_process("worker0", port, small_lyrics, res, 2)
    outputs = [p.communicate(timeout=300)[0] for p in (worker, chief)]
    assert [worker.returncode, chief.returncode] == [0, 0], outputs[1][-3000:]
    t = pd.read_csv(res / "lyrics_lstm" / "trials.csv")
    assert len(t) == 2 and (t["status"] == "COMPLETE").all() and t["val_accuracy"].notna().all()
    assert bool(t.loc[t["trial_id"] == int(forged.trial_id), "is_baseline"].iloc[0])
