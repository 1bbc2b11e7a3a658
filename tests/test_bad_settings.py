"""Settings that used to end in a traceback or a silent misbehaviour get one line and exit code 2, with
nothing written (issue 28: in-memory storage, a port out of range, a study plan of the wrong shape)."""

import pytest

from lyrics_cifar_search.runners import study
from lyrics_cifar_search.runners.search import cli


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://", "sqlite:///:memory:"])
def test_in_memory_storage_is_refused(tmp_path, small_lyrics, capsys, url):
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res),
                "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in-memory SQLite" in err and "Traceback" not in err
    assert not res.exists()


@pytest.mark.parametrize("port", ["99999", "0", "80a"])
def test_a_chief_port_out_of_range_is_refused(tmp_path, small_lyrics, capsys, monkeypatch, port):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", port)
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    res = tmp_path / "r"
    assert cli(["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(res)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "from 1 to 65535" in err and repr(port) in err
    assert not res.exists()


@pytest.mark.parametrize("plan", ["defaults = 5\n", 'lyrics = "x"\n', "cifar = [1, 2]\n"])
def test_a_plan_table_of_the_wrong_type_gets_one_line(tmp_path, capsys, plan):
    path = tmp_path / "plan.toml"
    path.write_text(plan + '[[search]]\nfamily = "lyrics_tfidf_logreg"\n')
    for args in ([str(path), "--dry-run"], [str(path)]):
        assert study.main([*args, "--results-dir", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "must be a table of flags" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def _image_tree(root, train_counts, test_per_class=3):
    """ROOT/train/<class>/*.png and ROOT/test/<class>/*.png, a class per entry of train_counts."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for c, n in enumerate(train_counts):
        for split, count in (("train", n), ("test", test_per_class)):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype="uint8")).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("train_counts, says", [
    ([12, 12, 12], "each block needs at least 2 classes"),  # blocks of one class each
    ([12, 12, 0, 12, 12, 12], "has no training images"),  # an empty train/ folder
])
def test_image_blocks_need_two_classes_with_training_images(tmp_path, capsys, train_counts, says):
    tree = _image_tree(tmp_path / "images", train_counts)
    for family in ("cifar_cnn", "cifar_autoencoder"):
        assert cli([family, "--data", str(tree), "--results-dir", str(tmp_path / "r"), "--max-trials", "1",
                    "--epochs", "1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err and "Traceback" not in err
    assert not (tmp_path / "r" / "cifar_cnn" / "trials.csv").exists()


def test_a_storage_password_is_never_echoed(tmp_path, small_lyrics, capsys):
    """An unreachable PostgreSQL URL: the error line names the URL with its password masked."""
    url = "postgresql://alice:hunter2@127.0.0.1:1/study"  # port 1: nothing listens there
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res),
                "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "alice:***@127.0.0.1" in err
    assert "hunter2" not in err + out


def test_the_recorded_command_masks_passwords(monkeypatch):
    from lyrics_cifar_search.suite_common import provenance
    monkeypatch.setattr("sys.orig_argv", ["python", "runners/search.py", "x", "--storage",
                                          "postgresql+psycopg://bob:pa:ss@db/s"], raising=False)
    command = provenance.provenance()["command"]
    assert "pa:ss" not in command and "postgresql+psycopg://bob:***@db/s" in command


def test_a_garbage_archive_gets_one_line(tmp_path, capsys):
    garbage = tmp_path / "cifar-100-python.tar.gz"
    garbage.write_bytes(bytes(range(256)) * 20)
    assert cli(["cifar_cnn", "--data", str(garbage), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable tar.gz archive" in err


@pytest.mark.parametrize("state", ["garbage{", "[1]", '{"lyrics_tfidf_logreg": 5}',
                                   '{"lyrics_tfidf_logreg": {"status": "done", "seconds": "x"}}'])
def test_a_damaged_study_state_gets_one_line(tmp_path, capsys, state):
    res = tmp_path / "r"
    res.mkdir()
    (res / "study_state.json").write_text(state)
    for args in (["--dry-run"], ["--only", "lyrics_tfidf_logreg"]):
        assert study.main([*args, "--results-dir", str(res)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "study_state.json is damaged" in err
    assert (res / "study_state.json").read_text() == state


@pytest.mark.parametrize("name, text", [("trials.csv", "status,val_accuracy\nCOMPLETE,abc\nCOMPLETE,0.5\n"),
                                        ("search.json", '{"objective": 5}'), ("search.json", '{"objective": ["x"]}')])
def test_dry_run_reads_damaged_search_files_without_a_traceback(tmp_path, capsys, name, text):
    folder = tmp_path / "r" / "lyrics_tfidf_logreg"
    folder.mkdir(parents=True)
    (folder / "trials.csv").write_text("status,val_accuracy\nCOMPLETE,0.5\n")
    (folder / name).write_text(text)
    (tmp_path / "r" / "study_state.json").write_text(
        '{"lyrics_tfidf_logreg": {"status": "done", "seconds": 3, "trials": 1, "budget": 1}}')
    assert study.main(["--dry-run", "--results-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "lyrics_tfidf_logreg" in out and "trials on record" in out


def test_analysis_that_cannot_write_gets_one_line(tmp_path, small_lyrics, capsys):
    from lyrics_cifar_search.analysis import compare, report
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "1",
                "--seq-len", "30", "--vocab-size", "300"]) == 0
    (res / "comparison_lyrics.csv").mkdir()  # where a table goes: the write fails, as on a read-only folder
    (res / "report.md").mkdir()
    capsys.readouterr()
    for main in (compare.main, report.main):
        assert main(["--results-dir", str(res)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: cannot write") and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("family", ["lyrics_tfidf_logreg", "lyrics_lstm"])
def test_a_full_disk_mid_search_gets_one_line_and_keeps_the_finished_trials(tmp_path, small_lyrics, family):
    """A file-size limit stands in for a full disk: just above the SQLite database's size (Optuna), or below
    Keras Tuner's trial files; the next write that grows a file fails (the database, a trial's state, a model
    file), and the search ends with one line, not with trials recorded as failed."""
    import os
    import resource
    import signal
    import subprocess
    import sys
    import pandas as pd
    res = tmp_path / "r"
    cmd = [sys.executable, "-m", "lyrics_cifar_search.runners.search", family, "--data", str(small_lyrics),
           "--results-dir", str(res), "--seq-len", "30", "--vocab-size", "300", "--epochs", "1"]
    assert cli(cmd[3:] + ["--max-trials", "2"]) == 0
    table = (res / family / "trials.csv").read_text()
    limit = os.path.getsize(res / "optuna.db")  # the record can grow no more

    def full_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(cmd + ["--max-trials", "200"], preexec_fn=full_disk, capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "cannot write" in errors[0]
    rows = pd.read_csv(res / family / "trials.csv")
    assert (rows["status"] == "COMPLETE").all() and len(rows) >= 2
    assert (res / family / "trials.csv").read_text().startswith(table.splitlines()[0])
