import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
REAL_LYRICS = SHARED / "lyrics" / "mll-train-subset-en-900.tsv"


@pytest.fixture
def real_lyrics():
    if not REAL_LYRICS.exists():
        pytest.skip(f"{REAL_LYRICS} is absent (../shared is not beside this checkout)")
    return REAL_LYRICS


@pytest.fixture(scope="session")
def small_lyrics(tmp_path_factory):
    """A small generated lyrics table in the Kaggle layout (400 rows)."""
    from study_data.lyrics import make_demo_table
    return make_demo_table(tmp_path_factory.mktemp("data") / "small.csv", n_rows=400, seed=1)
