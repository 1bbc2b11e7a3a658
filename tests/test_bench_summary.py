"""The benches' verdicts: time_to_accuracy.py's summary of kept runs says "within noise" only where the seeds'
bootstrap interval of a difference holds 0, and a task it cannot run is one line and exit 2."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "time_to_accuracy.py"


def run(tmp_path, record, *flags):
    (tmp_path / "record.json").write_text(json.dumps(record))
    return subprocess.run([sys.executable, str(BENCH), "--record", str(tmp_path / "record.json"),
                           "--png", str(tmp_path / "curves_{task}.png"), *flags],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)


def side(finals, seconds=10.0):
    """One side's runs over seeds 1..n: one trial each, its best at `seconds`."""
    return {str(k): {"curve": [[seconds, best, 3]], "epochs": 3, "finished": 1, "pruned": 0, "right": 50, "n": 100}
            for k, best in enumerate(finals, start=1)}


def differences(out):
    """{side: text after "side - "}: the lines that set a suite side against the plain tools."""
    return {line.split(" - ")[0].strip(): line.split(" - ", 1)[1] for line in out.splitlines()
            if line.startswith("  ") and " - kt-random:" in line}


def test_the_summary_says_within_noise_only_when_the_interval_holds_zero(tmp_path):
    seeds = "1,2,3,4,5,6"
    record = {"cifar": {"default": side([0.60, 0.61, 0.62, 0.63, 0.64, 0.65]),  # clearly above kt-random
                        "default-nb": side([0.40, 0.52, 0.45, 0.50, 0.41, 0.49]),  # overlaps kt-random
                        "kt-random": side([0.45, 0.50, 0.44, 0.48, 0.47, 0.46])}}
    out = run(tmp_path, record, "--tasks", "cifar", "--summarise-only", "--budget", "60s", "--seeds", seeds,
              "--sides", "default,default-nb,kt-random")
    assert out.returncode == 0, out.stderr
    lines = differences(out.stdout)
    # lower medians 0.62 and 0.46, every resample of the seeds apart
    assert lines["default"].startswith("kt-random: +0.1600 (+") and "within noise" not in lines["default"], out.stdout
    assert "within noise" in lines["default-nb"], out.stdout
    assert "default: final median best at least every other side's" in out.stdout
    assert (tmp_path / "curves_cifar.png").stat().st_size > 0


def test_a_task_it_cannot_run_is_one_line_and_exit_2(tmp_path):
    out = run(tmp_path, {}, "--tasks", "mnist")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: --tasks mnist: choose lyrics or cifar"
