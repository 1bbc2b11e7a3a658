"""What reaches the console (suite_common/console.py): library code logs, the command-line tools decide.
By default a command shows what it printed before; --quiet keeps warnings, errors and the summary;
--verbose adds each epoch; a program that imports the suite sees only warnings until it sets up logging."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.suite_common import console, log, warn

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--seq-len", "30", "--vocab-size", "300"]


def test_levels_reach_the_streams_the_commands_used(capsys):
    logger = logging.getLogger("lyrics_cifar_search.runners.prepare")
    logger.debug("an epoch")
    logger.info("a progress line")
    log("a notice")
    warn("a warning")
    out, err = capsys.readouterr()
    assert out == "a progress line\n" and err == "a notice\na warning\n"
    console.show(quiet=True)
    logger.info("a progress line")
    log("a notice")
    warn("a warning")
    assert capsys.readouterr() == ("", "a warning\n")
    console.show(verbose=True)
    logger.debug("an epoch")
    assert capsys.readouterr().out == "an epoch\n"


def test_a_program_that_imports_the_suite_decides_itself():
    """No handler of the suite's until a tool's show(): Python's own last resort prints warnings only;
    logging.basicConfig(level=INFO) brings the progress lines."""
    code = ("import logging\n"
            "from lyrics_cifar_search.suite_common import log, warn\n"
            "logging.getLogger('lyrics_cifar_search.x').info('progress'); log('notice'); warn('careful')\n"
            "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n"
            "logging.getLogger('lyrics_cifar_search.x').info('progress')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == "", out.stderr
    assert out.stderr.splitlines() == ["careful", "lyrics_cifar_search.x progress"]


@pytest.mark.parametrize("flag", [None, "--quiet", "--verbose"])
def test_a_search_shows_what_its_flag_asks(tmp_path, small_lyrics, capsys, flag):
    args = ["lyrics_lstm", "--data", str(small_lyrics), "--results-dir", str(tmp_path / "r"), "--max-trials", "1",
            "--epochs", "2", *FAST] + ([flag] if flag else [])
    assert cli(args) == 0
    out, err = capsys.readouterr()
    trial_line = "[lyrics_lstm] trial 0 COMPLETE"
    assert (trial_line in out) == (flag != "--quiet")  # progress: by default and with --verbose
    # issue 52: the lines show only what a trial changed from the baseline, and say so once
    assert out.count("each trial's line names the hyperparameters it changes from the baseline") \
        == (flag != "--quiet")
    assert ("epoch 2/2" in out) == (flag == "--verbose")  # every epoch: --verbose only
    assert "best" in out and "test" in out  # the closing summary, whatever the flag
    assert "rows" in out or flag == "--quiet"  # the data line (lyrics: "... train / ... validation ... rows")


def test_verbose_and_quiet_together_are_refused(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "runners" / "search.py"), "lyrics_lstm", "--verbose",
                          "--quiet"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 2 and "not allowed with argument" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow  # two searches in subprocesses
def test_a_keras_trial_shows_its_epoch_on_its_line_on_a_terminal_and_nothing_in_a_pipe(tmp_path, small_lyrics):
    """Issue 52, item 5: a trial of several minutes showed nothing until it ended (unless --verbose). On a
    terminal the trial's line says its epoch as it trains, then gives way to the finished trial's line."""
    import pty
    argv = [sys.executable, str(ROOT / "runners" / "search.py"), "lyrics_lstm", "--data", str(small_lyrics),
            "--max-trials", "1", "--epochs", "2", *FAST]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "300"}
    main, child = pty.openpty()
    proc = subprocess.Popen([*argv, "--results-dir", str(tmp_path / "tty")], stdout=child, stderr=subprocess.DEVNULL,
                            env=env)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child's end closed: it has exited
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=600) == 0
    os.close(main)
    shown = seen.decode(errors="replace")
    assert "\r\x1b[K[lyrics_lstm] trial 0: epoch 2/2  loss " in shown and "in this trial)" in shown
    after = shown.rsplit("\r\x1b[K", 1)[1]  # cleared: the progress lines take its place
    first = after.split("\n", 1)[0]  # the line the live one gave way to
    assert first.startswith("[lyrics_lstm] ") and "/2  " not in first and "trial 0 COMPLETE" in after
    piped = subprocess.run([*argv, "--results-dir", str(tmp_path / "pipe")], capture_output=True, text=True,
                           timeout=600, env=env)
    assert piped.returncode == 0 and "[lyrics_lstm] trial 0 COMPLETE" in piped.stdout
    assert "\r" not in piped.stdout and "epoch 1/2" not in piped.stdout
