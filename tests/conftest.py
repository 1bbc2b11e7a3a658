import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
REAL_LYRICS = SHARED / "lyrics" / "mll-train-subset-en-900.tsv"


@pytest.fixture(autouse=True)
def console_as_the_commands_show_it():
    """Tests that call the suite's functions directly read what a command-line tool shows (its console,
    suite_common/console.py); and a test that ran a command with --quiet leaves no level behind."""
    from lyrics_cifar_search.suite_common import console
    console.show()


@pytest.fixture
def real_lyrics():
    if not REAL_LYRICS.exists():
        pytest.skip(f"{REAL_LYRICS} is absent (../shared is not beside this checkout)")
    return REAL_LYRICS


@pytest.fixture(scope="session")
def small_lyrics(tmp_path_factory):
    """A small generated lyrics table in the Kaggle layout (400 rows), with a faint genre signal (10 % of the
    words a genre's own): models differ on it and none is perfect, which the tables' tests need."""
    from lyrics_cifar_search.study_data.lyrics_demo import make_demo_table
    return make_demo_table(tmp_path_factory.mktemp("data") / "small.csv", n_rows=400, seed=1, own_share=0.1)

CIFAR10_TAR = SHARED / "cifar10-jpg.tar.gz"


@pytest.fixture(scope="session")
def cifar10_subset(tmp_path_factory):
    """30 real CIFAR-10 JPEGs per class and split, unpacked from ../shared."""
    import tarfile
    if not CIFAR10_TAR.exists():
        pytest.skip(f"{CIFAR10_TAR} is absent (../shared is not beside this checkout)")
    root = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(CIFAR10_TAR) as tar:
        members = [m for m in tar if m.isfile() and m.name.endswith(".jpg") and int(Path(m.name).stem) < 30]
        tar.extractall(root, members=members, filter="data")
    return root


@pytest.fixture(scope="session")
def cifar_chain(tmp_path_factory):
    """cifar_cnn (2 trials) -> cifar_autoencoder (2) -> cifar_transfer (its 2 fixed trials) on the demo images,
    1 epoch each, searched once for every test that needs the chain (the transfer is the earlier study's
    45 M-parameter model). Tests copy the folder before changing anything in it."""
    from lyrics_cifar_search.runners.search import cli
    res = tmp_path_factory.mktemp("cifar_chain") / "results"
    for family, n in (("cifar_cnn", 2), ("cifar_autoencoder", 2), ("cifar_transfer", 2)):
        assert cli([family, "--data", "demo", "--results-dir", str(res), "--max-trials", str(n), "--epochs", "1"]) == 0
    return res


@pytest.fixture
def own_families(monkeypatch):
    """A family a test registers in this process (register_family, or --families-from through cli()) stays in
    that test: the registry, the modules loaded and LYRICS_SEARCH_FAMILIES are as before afterwards, so later
    tests in the worker (the registry's listing, a subprocess that inherits the environment) never see it."""
    from lyrics_cifar_search import search_spaces
    monkeypatch.setenv(search_spaces.FAMILIES_ENV, "")  # recorded, so teardown removes what cli() sets in it
    registry, loaded = dict(search_spaces._REGISTRY), set(search_spaces._USER_LOADED)
    yield
    search_spaces._REGISTRY.clear()
    search_spaces._REGISTRY.update(registry)
    search_spaces._USER_LOADED.clear()
    search_spaces._USER_LOADED.update(loaded)
