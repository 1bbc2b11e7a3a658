"""Every lyrics family: baseline and a non-default model build, train one
epoch on tiny data, save, reload, and predict the same."""

import keras
import keras_tuner as kt
import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from lyrics_cifar_search import search_spaces
from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners.best_model import _load_skops
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.suite_common import UserError
from lyrics_cifar_search.study_data.embeddings import embedding_matrix

KERAS_FAMILIES = search_spaces.list_families(task="lyrics", engine="keras_tuner")
SKLEARN_FAMILIES = search_spaces.list_families(task="lyrics", engine="optuna")
N, L, V, C, A = 48, 40, 60, 3, 6  # rows, sequence length (valid convolutions need 36+), vocabulary, genres, artists


def tiny(with_artist):
    rng = np.random.default_rng(0)
    x = {"lyrics": rng.integers(0, V, (N, L)).astype("int32")}
    if with_artist:
        x["artist"] = rng.integers(0, A, (N, 1)).astype("int32")
    spec = {"vocab_size": V, "seq_len": L, "n_classes": C, "with_artist": with_artist, "n_artists": A,
            "pretrained": rng.normal(size=(V, 50)).astype("float32")}
    return x, rng.integers(0, C, N), spec


def other_value(hp):
    """A value of hp other than its default."""
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return not hp.default
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return next(v for v in reversed(hp.values) if v != hp.default)
    return hp.max_value if hp.default != hp.max_value else hp.min_value


def build_and_train(family, hp, spec, x, y):
    keras.utils.set_random_seed(0)
    hypermodel = family.hypermodel(spec)
    model = hypermodel.build(hp)
    hypermodel.fit(hp, model, x, y, validation_data=(x, y), epochs=1, verbose=0)
    return model


def assert_reload_predicts_the_same(model, x, tmp_path):
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)
    assert before.shape == (N, C) and np.allclose(before.sum(1), 1, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", KERAS_FAMILIES)
def test_keras_family_baseline_and_non_default(name, tmp_path):
    family = search_spaces.get_family(name)
    x, y, spec = tiny(with_artist=False)
    base_hp = kt.HyperParameters()
    baseline = build_and_train(family, base_hp, spec, x, y)
    assert all(base_hp.values[h.name] == h.default for h in base_hp.space)
    assert_reload_predicts_the_same(baseline, x, tmp_path)

    # Every hyperparameter away from its default, and the artist joined in.
    xa, ya, spec_a = tiny(with_artist=True)
    space = kt.HyperParameters()
    family.hypermodel(spec_a).build(space)  # the space with the artist's hyperparameters
    hp = kt.HyperParameters()
    hp.values = {h.name: other_value(h) for h in space.space}
    model = build_and_train(family, hp, spec_a, xa, ya)
    assert "artist_join" in hp.values and hp.values["artist_join"] == "early"
    assert model.count_params() != baseline.count_params()
    assert_reload_predicts_the_same(model, xa, tmp_path)


def test_embedding_source_is_searched_in_every_sequence_family():
    x, y, spec = tiny(with_artist=False)
    for name in KERAS_FAMILIES:
        hp = kt.HyperParameters()
        search_spaces.get_family(name).hypermodel(spec).build(hp)
        source = next(h for h in hp.space if h.name == "embedding_source")
        assert {"glove_frozen", "glove_finetuned"} <= set(source.values), name


def test_glove_rows_are_the_real_vectors():
    matrix, coverage = embedding_matrix(["love", "night", "notawordxyz"])
    assert matrix.shape == (5, 50) and coverage == pytest.approx(2 / 3)
    assert not matrix[[0, 1, 4]].any() and matrix[2].any()
    # "love" and "night" are nearer each other than either is to the zero row
    assert np.dot(matrix[2], matrix[3]) > 0


def test_embeddings_flag_reads_a_word2vec_text_file(tmp_path):
    path = tmp_path / "vec.txt"
    path.write_text("2 3\nlove 1 2 3\nnight 4 5 6\n")
    matrix, coverage = embedding_matrix(["night", "day"], path)
    assert matrix.tolist()[2] == [4, 5, 6] and coverage == 0.5
    path.write_text("love 1 2 3\nnight 4 5\n")
    with pytest.raises(UserError, match="line 2"):
        embedding_matrix(["night"], path)


@pytest.mark.parametrize("name", SKLEARN_FAMILIES)
def test_sklearn_family_baseline_and_non_default(name, tmp_path):
    from sklearn.pipeline import Pipeline
    family = search_spaces.get_family(name)
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    texts = [" ".join(rng.choice(words, 15)) for _ in range(60)]
    y = rng.integers(0, 3, 60)
    spec = {"vocab_size": 50, "seq_len": 20}
    alt = {k: v for k, v in family.defaults.items()}
    if name == "lyrics_tfidf_logreg":
        alt.update(ngram_max=2, sublinear_tf=True, C=10.0, class_weight="balanced")
    else:
        alt.update(features="tfidf", max_features=1000, max_depth=None, criterion="entropy")
    from lyrics_cifar_search.runners import optuna_engine
    from lyrics_cifar_search.runners.prepare import Prepared
    prepared = Prepared(texts, y, texts[:20], y[:20], ["a", "b", "c"], spec, {}, {})
    cache = optuna_engine.FeatureCache(family, texts, texts[:20], spec)
    for params in (family.defaults, alt):
        model, metrics = optuna_engine.train(family, params, prepared, cache, seed=0)
        assert isinstance(model, Pipeline) and 0 <= metrics["val_accuracy"] <= 1
        sio.dump(model, tmp_path / "m.skops")
        again = _load_skops(tmp_path / "m.skops")
        np.testing.assert_array_equal(again.predict_proba(texts), model.predict_proba(texts))


def artist_table(path, n=300):
    """Genre is a function of the artist; the lyrics are noise."""
    rng = np.random.default_rng(3)
    genres = ["Rock", "Pop", "Metal"]
    rows = []
    for i in range(n):
        a = int(rng.integers(12))
        rows.append({"Artist": f"Band {a}", "Genre": genres[a % 3], "Language": "en",
                     "Lyrics": " ".join(rng.choice(["la", "na", "oh", "yeah", "baby", "night"], 12))})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_with_artist_rows_stay_aligned(tmp_path):
    # If artist and label rows drifted apart (the earlier study built them from
    # different splits), the artist could not predict the genre.
    data, res = artist_table(tmp_path / "a.csv"), tmp_path / "results"
    common = ["--data", str(data), "--results-dir", str(res), "--sample-fraction", "1", "--seq-len", "12"]
    assert cli(["lyrics_tfidf_logreg", "--with-artist", "--max-trials", "1", *common]) == 0
    assert cli(["lyrics_embedding", "--with-artist", "--max-trials", "1", "--epochs", "40", *common]) == 0
    assert cli(["lyrics_tfidf_logreg", "--max-trials", "1", *common]) == 0
    with_artist = pd.read_csv(res / "lyrics_tfidf_logreg_artist" / "trials.csv")["val_accuracy"][0]
    lyrics_only = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")["val_accuracy"][0]
    neural = pd.read_csv(res / "lyrics_embedding_artist" / "trials.csv")["val_accuracy"][0]
    assert with_artist >= 0.95 and neural >= 0.9 and lyrics_only < 0.6
    model = load_best("lyrics_tfidf_logreg", res, with_artist=True)
    assert model.predict(["la la oh yeah"] * 3, artists=["Band 0", "Band 1", "Band 2"]) == ["Rock", "Pop", "Metal"]
    keras_model = load_best("lyrics_embedding", res, with_artist=True)
    assert keras_model.predict(["la na"] * 3, artists=["Band 3", "Band 4", "Band 5"]) == ["Rock", "Pop", "Metal"]
    # post-padded as in training (the study's artist notebook), at prediction time too
    assert keras_model.padding == "post" and list(keras_model.inputs(["la na"], ["Band 3"])["lyrics"][0][:3]) != [0] * 3
    with pytest.raises(UserError, match="artists"):
        keras_model.predict(["la na"])


def test_with_artist_on_a_table_without_artists_fails_clearly(tmp_path, real_lyrics, capsys):
    code = cli(["lyrics_lstm", "--with-artist", "--data", str(real_lyrics), "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--with-artist needs an artist column" in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", KERAS_FAMILIES + SKLEARN_FAMILIES)
def test_every_family_searches_resumes_and_reloads(name, tmp_path, small_lyrics):
    res = tmp_path / "results"
    # valid convolutions: 4 blocks of kernel 7 need 120 steps
    args = [name, "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "2", "--epochs", "1",
            "--sample-fraction", "1", "--seq-len", "120" if "cnn" in name else "30", "--vocab-size", "300"]
    assert cli(args) == 0
    t = pd.read_csv(res / name / "trials.csv")
    assert len(t) == 2 and bool(t["is_baseline"][0]) and not bool(t["is_baseline"][1])
    assert (t["status"] == "COMPLETE").all() and t["val_accuracy"].between(0, 1).all()
    assert cli(args) == 0
    assert pd.read_csv(res / name / "trials.csv").equals(t)
    model = load_best(name, res)
    assert model.meta["metrics"]["val_accuracy"] == pytest.approx(t["val_accuracy"].max())
    assert len(model.predict(["some words of a song", "more words"])) == 2


def test_the_tree_with_the_artist_reads_what_the_studys_tree_read():
    """Issue 51: the study's tree with the artist read end-padded lyrics ids (its artist notebook's padding='post')
    and a separate artist column (first seen in training first, from 0; -1 for an unseen artist, cell 53); the
    suite's read front-padded ids with the artist as the last word."""
    from lyrics_cifar_search.study_data.text import TokenIdFeatures, artist_token
    train = [f"love night {artist_token('Queen')}", f"fire {artist_token('ABBA')}", f"night {artist_token('Queen')}"]
    features = TokenIdFeatures(vocab_size=10, seq_len=4, pipeline="study").fit(train)
    ids = {w: features.vocab_.index(w) + 1 for w in ("love", "night", "fire")}
    out = features.transform([f"love night {artist_token('Queen')}", f"fire {artist_token('Nobody')}"])
    assert out.tolist() == [[ids["love"], ids["night"], 0, 0, 0], [ids["fire"], 0, 0, 0, -1]]
    assert features.width == 5 and features.artists_ == {artist_token("Queen"): 0, artist_token("ABBA"): 1}
    assert all(not w.startswith("__artist__") for w in features.vocab_)  # the artist is a column, not a word
    # the suite's pipeline keeps its own layout: the artist a token among the words
    suite = TokenIdFeatures(vocab_size=10, seq_len=4, pipeline="suite").fit(train)
    assert not hasattr(suite, "artists_") and suite.transform(train).shape == (3, 4)


def test_the_trees_token_ids_are_the_studys_under_its_pipeline():
    """Issue 41: the earlier study's tree read pad_sequences of a Tokenizer without an oov_token, so words outside
    the vocabulary were left out; under --text-pipeline study (the default) trial 0 reads the same ids."""
    from lyrics_cifar_search.search_spaces import get_family
    from lyrics_cifar_search.study_data.text import TokenIdFeatures
    train = ["love love night", "night fire love", "fire rain"]
    study = TokenIdFeatures(vocab_size=10, seq_len=4, pipeline="study").fit(train)
    suite = TokenIdFeatures(vocab_size=10, seq_len=4, pipeline="suite").fit(train)
    unseen = ["love zebra night zebra"]
    # the study's Tokenizer's ids: from 1
    assert study.transform(unseen).tolist() == [[0, 0, study.vocab_.index("love") + 1, study.vocab_.index("night") + 1]]
    assert suite.transform(unseen).tolist()[0].count(1) == 2  # the unseen words as id 1
    tree = get_family("lyrics_decision_tree")
    made = tree.make_features(tree.defaults, {"vocab_size": 10, "seq_len": 4, "text_pipeline": "study"})
    assert made.pipeline == "study"


def test_a_model_built_on_one_input_or_a_list_is_fed_as_built_without_keras_warnings():
    """Issue 52, item 2: a user's family built on one Input (the README's) got the suite's dict, and Keras
    warned four lines at every call; the data now takes the structure of the model's inputs."""
    import warnings
    import keras
    from lyrics_cifar_search.study_data.text import as_model_takes
    ids, artists = np.ones((4, 5), "int32"), np.zeros((4, 1), "int32")
    x = {"lyrics": ids, "artist": artists}

    def model(inputs, *used):
        joined = keras.layers.Concatenate()([keras.layers.Flatten()(keras.layers.Embedding(9, 2)(t)) for t in used])
        return keras.Model(inputs, keras.layers.Dense(3)(joined))

    words = keras.Input((5,), dtype="int32", name="lyrics")
    artist = keras.Input((1,), dtype="int32", name="artist")
    other = keras.Input((5,), dtype="int32", name="words")  # one input, named otherwise
    named = {"lyrics": keras.Input((5,), dtype="int32", name="lyrics")}
    cases = [(model(words, words), {"lyrics": ids}, ids), (model(other, other), {"lyrics": ids}, ids),
             (model([artist, words], artist, words), x, [artists, ids]),
             (model(named, named["lyrics"]), {"lyrics": ids}, {"lyrics": ids})]
    for m, given, expected in cases:
        fed = as_model_takes(m, given)
        pairs = list(zip(keras.tree.flatten(fed), keras.tree.flatten(expected), strict=True))
        assert all(a is b for a, b in pairs) and type(fed) is type(expected)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Keras's "structure of `inputs` doesn't match" fails here
            assert m.predict(fed, verbose=0).shape == (4, 3)
    assert as_model_takes(cases[0][0], ids) is ids  # images, or anything not a dict: as is
