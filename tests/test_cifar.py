"""Task 2: class blocks, the three CIFAR families on made-up and real images, transfer."""

import io
import json
import pickle
import tarfile

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.suite_common import UserError
from lyrics_cifar_search.study_data import image_sources, images


@pytest.fixture(scope="module")
def demo():
    return images.load_images("demo")


def test_blocks_are_disjoint_seeded_and_remapped(demo):
    b1, b2 = images.make_block(demo, 1, seed=7), images.make_block(demo, 2, seed=7)
    assert not set(b1.class_names) & set(b2.class_names)
    assert len(b1.class_names) == len(b2.class_names) == 5
    assert set(b1.class_names) | set(b2.class_names) == set(demo.class_names)
    for b in (b1, b2):
        for y in (b.y_train, b.y_val, b.y_test):
            assert set(np.unique(y)) == set(range(5))  # labels 0..N-1, every class in every split
        assert b.x_train.dtype == np.float32 and 0 <= b.x_train.min() and b.x_train.max() <= 1
        assert len(b.y_train) + len(b.y_val) + len(b.y_test) == 5 * 60
    again = images.make_block(demo, 1, seed=7)
    assert again.class_names == b1.class_names and np.array_equal(again.x_test, b1.x_test)
    other = images.make_block(demo, 1, seed=8)
    assert other.class_names != b1.class_names or not np.array_equal(other.x_test, b1.x_test)
    # The remapped labels point at the right images: each class keeps its own pixels.
    cid = b1.assignment["class_ids"][0]
    orig = demo.x[demo.y == cid].astype("float32") / 255
    assert any(np.array_equal(b1.x_train[0], o) for o in orig) == (b1.y_train[0] == 0)
    assert b1.assignment["block_classes"]["2"] == b2.class_names


def test_cifar100_python_archive_is_read_without_running_code(tmp_path):
    rng = np.random.default_rng(0)

    def batch(n):
        return {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"fine_labels": list(rng.integers(0, 4, n))}
    meta = {b"fine_label_names": [b"apple", b"bear", b"cloud", b"dolphin"]}
    path = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in (("train", batch(40)), ("test", batch(8)), ("meta", meta)):
            data = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s = images.load_images(path, cache_dir=tmp_path / "cache")
    assert s.x.shape == (48, 32, 32, 3) and s.class_names == ["apple", "bear", "cloud", "dolphin"]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with pytest.raises(UserError, match="refusing builtins.print"):
        image_sources._unpickle(pickle.dumps({b"data": Evil()}), "evil")


def test_offline_default_source_names_the_alternatives(monkeypatch):
    def offline(**kwargs):
        raise OSError("no network")
    monkeypatch.setattr(keras.datasets.cifar100, "load_data", offline)
    with pytest.raises(UserError) as e:
        images.load_images(None)
    msg = str(e.value)
    assert "cifar-100-python.tar.gz" in msg and "image-folder" in msg and image_sources.CIFAR100_URL in msg


def test_real_cifar10_folder_loads_and_splits(cifar10_subset, tmp_path):
    s = images.load_images(cifar10_subset, cache_dir=tmp_path)
    assert s.x.shape == (600, 32, 32, 3) and len(s.class_names) == 10 and "airplane" in s.class_names
    assert np.bincount(s.y).tolist() == [60] * 10
    cached = images.load_images(cifar10_subset, cache_dir=tmp_path)
    assert np.array_equal(cached.x, s.x) and len(list(tmp_path.glob("images-*.npz"))) == 1
    assert images.load_images(cifar10_subset, cache_dir=tmp_path, per_class=10).x.shape[0] == 200
    b = images.make_block(s, 1, seed=42)
    # the official test images are the test split; validation is carved from the training images
    assert len(b.class_names) == 5 and (len(b.y_train), len(b.y_val), len(b.y_test)) == (120, 30, 150)
    assert b.assignment["test_split"] == "the official test images"
    assert int(s.is_test.sum()) == 300 and images.load_images(cifar10_subset, cache_dir=tmp_path,
                                                             per_class=10).is_test.sum() == 100


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar_cnn", "cifar_autoencoder"])
def test_block1_family_baseline_and_non_default_reload_equal(name, tmp_path, demo):
    family = search_spaces.get_family(name)
    b = images.make_block(demo, 1)
    y = b.x_train if family.targets == "images" else b.y_train
    hm = family.hypermodel({"n_classes": 5})
    base = kt.HyperParameters()
    overrides = {"cifar_cnn": {"activation": "gelu", "loss": "focal", "skip": "residual", "augment": True},
                 "cifar_autoencoder": {"depth": 3, "filters": 32, "code_channels": 16, "loss": "mae"}}[name]
    other = kt.HyperParameters()
    other.values = dict(overrides)
    for hp in (base, other):
        keras.utils.set_random_seed(0)
        model = hm.build(hp)
        hm.fit(hp, model, b.x_train[:64], y[:64], epochs=1, verbose=0)
        before = model.predict(b.x_val, verbose=0)
        model.save(tmp_path / "m.keras")
        again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
        np.testing.assert_allclose(again.predict(b.x_val, verbose=0), before, rtol=1e-5, atol=1e-6)
    assert other.values["skip"] == "residual" if name == "cifar_cnn" else other.values["depth"] == 3


def test_cnn_loss_choices_all_give_a_finite_loss_on_their_targets():
    from lyrics_cifar_search.search_spaces.cifar_cnn import LOSSES, make_loss
    y = np.array([0, 1, 2])
    probs = np.full((3, 3), 1 / 3, dtype="float32")
    for name in LOSSES:
        loss, one_hot = make_loss(name)
        target = keras.utils.to_categorical(y, 3) if one_hot else y
        assert np.isfinite(float(loss(target, probs))), name


def run(res, family, *extra):
    return cli([family, "--data", "demo", "--results-dir", str(res), "--max-trials", "3", "--epochs", "1", *extra])


def test_transfer_needs_block1_results(tmp_path, capsys):
    assert run(tmp_path, "cifar_transfer") == 2
    assert "run `python runners/search.py cifar_cnn`" in capsys.readouterr().err


@pytest.mark.slow
def test_cnn_autoencoder_transfer_end_to_end(tmp_path, cifar_chain):
    import shutil
    res = tmp_path / "results"
    shutil.copytree(cifar_chain, res)  # searched with the CLI, in order (conftest.py)
    # the transfer's two fixed trials (the study's 45 M-parameter model, then the same from scratch) suffice
    for family, n in (("cifar_cnn", 2), ("cifar_autoencoder", 2), ("cifar_transfer", 2)):
        t = pd.read_csv(res / family / "trials.csv")
        assert len(t) == n and (t["status"] == "COMPLETE").all() and bool(t["is_baseline"][0])
        assert run(res, family, "--max-trials", str(n)) == 0  # resume adds none
        assert pd.read_csv(res / family / "trials.csv").equals(t)

    cnn = pd.read_csv(res / "cifar_cnn" / "trials.csv")
    # trial 1 is the study's skip model, kept beside best/ for the transfer
    assert cnn["hp_skip"].tolist() == ["none", "concat"]
    kept = json.loads((res / "cifar_cnn" / "study_skip_model" / "meta.json").read_text())
    assert kept["hyperparameters"]["skip"] == "concat" and str(kept["trial_id"]) == str(cnn["trial_id"][1])
    assert not kept["is_baseline"] and (res / "cifar_cnn" / "study_skip_model" / "model.keras").exists()
    for hp in ("activation", "loss", "skip"):
        table = pd.read_csv(res / "cifar_cnn" / f"compare_{hp}.csv")
        assert set(table[hp]) == set(cnn[f"hp_{hp}"])
        for _, row in table.iterrows():
            assert row["best_val_accuracy"] == cnn[cnn[f"hp_{hp}"] == row[hp]]["val_accuracy"].max()

    ae = pd.read_csv(res / "cifar_autoencoder" / "trials.csv")
    ae_meta = load_best("cifar_autoencoder", res).meta
    # minimised (trials.csv holds 12 significant digits)
    assert ae_meta["metrics"]["val_reconstruction_mse"] == pytest.approx(ae["val_reconstruction_mse"].min(), rel=1e-9)
    png = (res / "cifar_autoencoder" / "best" / "reconstructions.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    tr = pd.read_csv(res / "cifar_transfer" / "trials.csv")
    assert tr["hp_source"][0] == "both" and tr["hp_source"][1] == "none"  # the study's model, then from scratch
    assert (tr["hp_cnn_weights"] == "study_skip_model").all()  # the study's transfer took the skip model's convs
    assert (tr["hp_autoencoder_weights"] == "study_autoencoder").all()  # and the study's autoencoder (its baseline/)
    comparison = pd.read_csv(res / "cifar_transfer" / "compare_transfer.csv")
    assert list(comparison["model"]) == ["transferred", "from scratch"]

    # Block 2 is the other half of the classes, and the saved best reloads and predicts.
    model = load_best("cifar_transfer", res)
    blocks = model.meta["blocks"]["block_classes"]
    assert model.label_names == blocks["2"] and not set(blocks["1"]) & set(blocks["2"])
    demo = images.load_images("demo")
    b2 = images.make_block(demo, 2)
    pred = model.model.predict(b2.x_val, verbose=0).argmax(1)
    assert np.mean(pred == b2.y_val) == pytest.approx(model.meta["metrics"]["val_accuracy"])
    raw = (b2.x_val[:3] * 255).round().astype("uint8")
    assert model.predict(raw) == [model.label_names[i] for i in pred[:3]]


def test_transfer_refuses_block1_models_from_other_blocks(tmp_path, capsys):
    res = tmp_path / "results"
    assert cli(["cifar_cnn", "--data", "demo", "--results-dir", str(res), "--max-trials", "1", "--epochs", "1"]) == 0
    capsys.readouterr()
    assert cli(["cifar_transfer", "--data", "demo", "--results-dir", str(res), "--seed", "5"]) == 2
    assert "other blocks" in capsys.readouterr().err


def test_real_cifar10_search(cifar10_subset, tmp_path):
    res = tmp_path / "results"
    assert cli(["cifar_cnn", "--data", str(cifar10_subset), "--results-dir", str(res), "--max-trials", "1",
                "--epochs", "1"]) == 0
    model = load_best("cifar_cnn", res)
    assert set(model.label_names) <= {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                      "ship", "truck"} and len(model.label_names) == 5


def test_comparison_tables_rank_finished_trials_in_the_objectives_direction():
    trials = pd.DataFrame({
        "trial_id": [0, 1, 2, 3, 4], "status": ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL", "PRUNED"],
        "hp_activation": ["relu", "relu", "tanh", "tanh", "tanh"], "hp_loss": ["ce"] * 5, "hp_skip": ["none"] * 5,
        "val_loss": [0.9, 0.5, 0.7, 0.1, 0.2]})
    cnn = search_spaces.get_family("cifar_cnn").comparison_tables(trials, "val_loss", "min")["compare_activation"]
    # lowest loss per activation from complete trials only (the failed 0.1 and the pruned 0.2 are not results);
    # the pruned trial counts as effort spent on tanh; both settings stand on 2 ended trials
    assert cnn[["activation", "best_val_loss", "best_trial", "trials", "pruned",
                "best_val_loss_at_equal_effort", "equal_effort_trials"]].to_dict("records") == [
        {"activation": "relu", "best_val_loss": 0.5, "best_trial": 1, "trials": 2, "pruned": 0,
         "best_val_loss_at_equal_effort": 0.5, "equal_effort_trials": 2},
        {"activation": "tanh", "best_val_loss": 0.7, "best_trial": 2, "trials": 2, "pruned": 1,
         "best_val_loss_at_equal_effort": 0.7, "equal_effort_trials": 2}]
    trials["hp_source"] = ["cnn", "none", "none", "cnn", "cnn"]
    trials[["best_epoch", "epochs_run"]] = 1
    transfer = search_spaces.get_family("cifar_transfer").comparison_tables(trials, "val_loss", "min")
    rows = transfer["compare_transfer"].set_index("model")
    assert rows.loc["transferred", "best_trial"] == 0 and rows.loc["from scratch", "best_trial"] == 1
    assert rows.loc["from scratch", "trials"] == 2


def test_comparison_tables_compare_settings_at_equal_effort():
    """Issue 41: a setting tried four times is not favoured over one tried once just by its tries: at equal
    effort each stands on its first trial; the table says how many trials and epochs each row stands on."""
    trials = pd.DataFrame({
        "trial_id": [0, 1, 2, 3, 4], "status": ["COMPLETE"] * 5, "hp_activation": ["relu", "tanh", "relu", "relu",
                                                                                    "relu"],
        "hp_loss": ["ce"] * 5, "hp_skip": ["none"] * 5, "val_accuracy": [0.30, 0.40, 0.50, 0.55, 0.60],
        "epochs_run": [5, 5, 6, 7, 8]})
    table = search_spaces.get_family("cifar_cnn").comparison_tables(trials)["compare_activation"].set_index("activation")
    assert table.loc["relu", "best_val_accuracy"] == 0.60 and table.loc["relu", "trials"] == 4
    assert table.loc["relu", "best_val_accuracy_at_equal_effort"] == 0.30  # its first trial, as tanh's one
    assert table.loc["tanh", "best_val_accuracy_at_equal_effort"] == 0.40
    assert list(table.index) == ["tanh", "relu"] and table.loc["relu", "epochs"] == 26
    assert (table["equal_effort_trials"] == 1).all()


def test_equal_effort_is_equal_epochs_and_each_row_has_the_studys_own_model():
    """Issue 51: equal effort counted a pruned trial as a whole one (relu's first trial, pruned after 1 epoch,
    stood against tanh's 12-epoch trial), and a setting's best was confounded with other hyperparameters: each row
    now stands on its first trials up to the least-trained setting's epochs, and shows the study's own model (the
    one-factor trial: the baseline for relu, the tanh trial for tanh) beside the best found."""
    trials = pd.DataFrame({
        "trial_id": [0, 1, 2, 3], "status": ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"],
        "is_baseline": [True, False, False, False], "hp_activation": ["relu", "tanh", "relu", "relu"],
        "hp_loss": ["ce", "ce", "ce", "focal"], "hp_skip": ["none", "none", "none", "concat"],
        "val_accuracy": [0.30, 0.40, 0.10, 0.55],
        "epochs_run": [10, 12, 1, 10]})
    table = search_spaces.get_family("cifar_cnn").comparison_tables(trials)["compare_activation"].set_index("activation")
    # tanh spent 12 epochs; relu's first two trials 11, its third would make 21
    assert table.loc["relu", "equal_effort_trials"] == 2 and table.loc["relu", "equal_effort_epochs"] == 11
    assert table.loc["tanh", "equal_effort_trials"] == 1 and table.loc["tanh", "equal_effort_epochs"] == 12
    assert table.loc["relu", "best_val_accuracy"] == 0.55 and table.loc["relu", "best_val_accuracy_at_equal_effort"] == 0.30
    assert table.loc["relu", "study_model_val_accuracy"] == 0.30 and table.loc["relu", "study_model_trial"] == 0
    assert table.loc["tanh", "study_model_val_accuracy"] == 0.40 and table.loc["tanh", "study_model_trial"] == 1
    loss = search_spaces.get_family("cifar_cnn").comparison_tables(trials)["compare_loss"].set_index("loss")
    assert pd.isna(loss.loc["focal", "study_model_val_accuracy"])  # focal with a skip: two factors, not a study model


def test_the_study_block_1_cnns_are_the_cifar_searchs_fixed_trials():
    """Issue 51: the study's tanh and sigmoid-output models never ran; they are fixed trials 2 and 3 (trial 1 its
    skip model, which cifar_transfer takes)."""
    family = search_spaces.get_family("cifar_cnn")
    assert family.first_trials == ({}, {"skip": "concat"}, {"activation": "tanh"}, {"output_activation": "sigmoid"})


def test_cifar_as_numpy_arrays_is_accepted(tmp_path, capsys):
    """Issue 42: CIFAR-100 as keras.datasets.cifar100.load_data() returns it, saved as an .npz, is --data."""
    from lyrics_cifar_search.runners.search import cli
    rng = np.random.default_rng(0)
    x_train, y_train = rng.integers(0, 256, (80, 32, 32, 3), dtype=np.uint8), (np.arange(80) % 4).reshape(-1, 1)
    x_test, y_test = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), (np.arange(20) % 4).reshape(-1, 1)
    np.savez(tmp_path / "cifar.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    imgs = images.load_images(str(tmp_path / "cifar.npz"), cache_dir=tmp_path / "c")
    assert imgs.x.shape == (100, 32, 32, 3) and imgs.is_test.sum() == 20 and imgs.class_names[:2] == ["class_0",
                                                                                                     "class_1"]
    block = images.make_block(imgs, 1, seed=0)
    assert len(block.y_test) == 10  # the official test images of its 2 classes
    np.savez(tmp_path / "bad.npz", images=x_train)
    assert cli(["cifar_cnn", "--data", str(tmp_path / "bad.npz"), "--results-dir", str(tmp_path / "r")]) == 2
    assert "x_train and y_train" in capsys.readouterr().err
