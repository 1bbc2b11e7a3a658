"""Your own family (issue 42): the README's snippet runs as pasted, from a file given with --families-from;
a family whose code fails stops the search once with one line naming its file and line; a resume of a search
whose trials all failed says to start over with --fresh; trial 0 is "the family's defaults"."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # subprocesses that train

ROOT = Path(__file__).resolve().parents[1]


def readme_family():
    """The Python block of the README's 'Your own family' section, as pasted."""
    section = (ROOT / "README.md").read_text().split("### Your own family", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def search(tmp_path, *args):
    # in a process of its own: the family registers itself in that process only
    return subprocess.run([sys.executable, str(ROOT / "runners" / "search.py"), *args], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_the_readmes_family_runs_as_pasted(tmp_path, small_lyrics):
    (tmp_path / "my_families.py").write_text(readme_family())
    out = search(tmp_path, "lyrics_gru", "--families-from", "my_families.py", "--data", str(small_lyrics),
                 "--max-trials", "2", "--epochs", "1", "--seq-len", "30", "--vocab-size", "300")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trial 0 (the family's defaults)" in out.stdout
    # its one input takes the lyrics' array, not the dict the suite's own families take (issue 52, item 2)
    assert "structure of `inputs`" not in out.stderr and "Warning" not in out.stderr, out.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "results" / "lyrics_gru" / "trials.csv")
    assert len(rows) == 2 and rows["status"].tolist() == ["COMPLETE", "COMPLETE"]
    listed = search(tmp_path, "--list", "--families-from", "my_families.py")
    assert "lyrics_gru" in listed.stdout and "GRU over learned word embeddings" in listed.stdout


@pytest.mark.parametrize("when", ["build", "fit"])
def test_a_family_that_fails_stops_the_search_once_naming_its_line(tmp_path, small_lyrics, when):
    """In build() (caught before any trial, as the baseline is built) or in fit() (the first trial)."""
    if when == "build":
        code = readme_family().replace("        return model\n", "        model.fit_generator_missing()\n"
                                                                  "        return model\n")
    else:
        code = readme_family() + ("\n    def fit(self, hp, model, *args, **kwargs):\n"
                                  "        raise RuntimeError('the fit_generator_missing of my own fit')\n")
    (tmp_path / "broken.py").write_text(code.replace("lyrics_gru", "lyrics_broken"))
    out = search(tmp_path, "lyrics_broken", "--families-from", "broken.py", "--data", str(small_lyrics),
                 "--max-trials", "3", "--epochs", "1", "--seq-len", "30", "--vocab-size", "300")
    assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    line = next(i for i, text in enumerate(code.splitlines(), 1) if "fit_generator_missing" in text)
    assert len(errors) == 1 and f"broken.py, line {line}" in errors[0], out.stderr[-2000:]


def test_a_resume_of_a_search_whose_trials_all_failed_points_to_fresh(tmp_path, small_lyrics):
    """Trials whose loss turns NaN fail (a failed configuration, not the family's code): after every trial on
    record failed, the resume says it tries the same again and points to --fresh."""
    code = readme_family().replace('loss="sparse_categorical_crossentropy"',
                                   'loss=lambda y, p: keras.ops.mean(p) * float("nan")')
    (tmp_path / "nan.py").write_text(code.replace("lyrics_gru", "lyrics_nan"))
    args = ["lyrics_nan", "--families-from", "nan.py", "--data", str(small_lyrics), "--max-trials", "2",
            "--epochs", "1", "--seq-len", "30", "--vocab-size", "300"]
    first = search(tmp_path, *args)
    rows = pd.read_csv(tmp_path / "results" / "lyrics_nan" / "trials.csv")
    assert rows["status"].tolist() == ["FAIL", "FAIL"], first.stderr[-2000:]
    again = search(tmp_path, *[a if a != "2" else "3" for a in args])
    assert "note: all 2 trials on record failed" in again.stderr and "--fresh" in again.stderr


def test_a_family_written_for_0_1s_import_names_is_told_the_new_one(tmp_path, small_lyrics):
    """0.1's suite had top-level packages: `from search_spaces import register_family` is one line naming the
    file, its line and the import to write now, exit code 2."""
    code = readme_family().replace("from lyrics_cifar_search.search_spaces import", "from search_spaces import")
    assert code != readme_family()
    (tmp_path / "old.py").write_text(code)
    out = search(tmp_path, "lyrics_gru", "--families-from", "old.py", "--data", str(small_lyrics))
    assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    line = next(i for i, text in enumerate(code.splitlines(), 1) if text.startswith("from search_spaces"))
    assert len(errors) == 1 and f"old.py, line {line}" in errors[0], out.stderr[-2000:]
    assert "from lyrics_cifar_search.search_spaces import" in errors[0]
