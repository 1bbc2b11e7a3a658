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
    and ends it "complete" with no score is refused; the chief keeps the trial running (a silent holder's trial
    goes to the next worker: test_workers.py) and records nothing for it."""
    import time

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.engine import trial as trial_module
    res, port = tmp_path / "r", _free_port()
    chief = _keras_process("chief", port, small_lyrics, res, 2)
    try:
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
        kept = stub.GetTrial(protos.get_service().GetTrialRequest(trial_id=forged.trial_id), timeout=10)
        assert trial_module.Trial.from_proto(kept.trial).status == trial_module.TrialStatus.RUNNING
    finally:
        chief.kill()
        out = chief.communicate(timeout=60)[0]
    assert "refused a result for trial" in out
    table = res / "lyrics_lstm" / "trials.csv"
    assert not table.exists() or "COMPLETE" not in pd.read_csv(table)["status"].tolist()
