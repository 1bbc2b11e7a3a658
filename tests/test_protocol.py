"""The study's protocol, each part checked so that breaking it fails a test:
every row keeps its own text, artist and label through dropping, sampling and
splitting; text features are fitted on training rows only; every class of
both image blocks maps back to its original label; the official test images
are the test split."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from lyrics_cifar_search.analysis.best_model import load_best
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.study_data import images, lyrics

GENRES = ("Rock", "Pop", "Metal", "Jazz")


def source_table(path, n=240, seed=0):
    """Rows with unique words; artists shared within a genre (so a shuffle among same-genre rows keeps
    every artist's genre right but its row wrong); some rows without lyrics; a genre too small to split."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        genre = GENRES[i % 3] if i < n - 3 else "Jazz"  # Jazz: 3 rows, dropped as too few
        lyric = "" if i % 37 == 5 else f"Word{i} shared{rng.integers(20)} the song{i % 11}!\nline{i}"
        rows.append({"Artist": f"{genre} Artist {rng.integers(6)}", "Genre": genre, "Language": "en",
                     "Lyrics": lyric})
    pd.DataFrame(rows).to_csv(path, index=False)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("fraction", [1.0, 0.6])
def test_every_row_keeps_its_text_artist_and_label(tmp_path, fraction):
    source = source_table(tmp_path / "t.csv")
    d = lyrics.load(tmp_path / "t.csv", cache_dir=tmp_path / "cache", sample_fraction=fraction, seed=3)
    seen = []
    for split in (d.train, d.val, d.test):
        assert len(split.rows) == len(split.y) == len(split.texts) == len(split.artists)
        for row, text, artist, y in zip(split.rows, split.texts, split.artists, split.y):
            src = source.iloc[row]
            assert text == d.encoder.preprocess(src["Lyrics"])
            assert artist == src["Artist"] and d.label_names[y] == src["Genre"]
        seen += list(split.rows)
    kept = source[(source["Lyrics"] != "") & (source["Genre"] != "Jazz")]
    assert len(seen) == len(set(seen))  # no row in two splits
    assert set(seen) <= set(kept.index)
    assert len(seen) == (len(kept) if fraction == 1.0 else pytest.approx(0.6 * len(kept), abs=3))
    # and the same through the cache
    again = lyrics.load(tmp_path / "t.csv", cache_dir=tmp_path / "cache", sample_fraction=fraction, seed=3)
    assert np.array_equal(again.val.rows, d.val.rows) and again.val.artists == d.val.artists


def test_test_file_rows_keep_their_own_text_artist_and_label(tmp_path):
    source_table(tmp_path / "train.csv")
    test = source_table(tmp_path / "test.csv", n=60, seed=1)
    d = lyrics.load(tmp_path / "train.csv", tmp_path / "test.csv", cache_dir=tmp_path, seed=3)
    for row, text, artist, y in zip(d.test.rows, d.test.texts, d.test.artists, d.test.y):
        assert text == d.encoder.preprocess(test.iloc[row]["Lyrics"]) and artist == test.iloc[row]["Artist"]
        assert d.label_names[y] == test.iloc[row]["Genre"]


@pytest.mark.parametrize("family", ["lyrics_tfidf_logreg", "lyrics_decision_tree"])
def test_text_features_are_fitted_on_training_rows_only(tmp_path, family):
    source_table(tmp_path / "t.csv")
    res = tmp_path / "results"
    extra = ["--seq-len", "20"] if family == "lyrics_decision_tree" else []
    assert cli([family, "--data", str(tmp_path / "t.csv"), "--results-dir", str(res), "--max-trials", "1",
                *extra]) == 0
    d = lyrics.load(tmp_path / "t.csv", cache_dir=res / "_cache", **({"seq_len": 20} if extra else {}))
    features = load_best(family, res).model.named_steps["features"]
    train_words = {w for t in d.train.texts for w in t.split()}
    held_out_only = {w for s in (d.val, d.test) for t in s.texts for w in t.split()} - train_words
    assert len(held_out_only) > 40  # every row has words of its own
    if family == "lyrics_tfidf_logreg":
        counts, tfidf = features.named_steps["counts"], features.named_steps["tfidf"]
        assert not set(counts.vocabulary) & held_out_only
        # the same vocabulary and IDF weights as TfidfVectorizer fitted on the training texts alone
        reference = TfidfVectorizer(max_features=5000).fit(d.train.texts)
        assert list(counts.vocabulary) == list(reference.get_feature_names_out())
        np.testing.assert_allclose(tfidf.idf_, reference.idf_)
    else:
        assert features.vocab_ and not set(features.vocab_) & held_out_only
        assert set(features.vocab_) <= train_words
    # Every feature setting the family searches, with room for every word, through the engine's cache
    from lyrics_cifar_search import search_spaces
    from lyrics_cifar_search.runners import optuna_engine
    fam = search_spaces.get_family(family)
    spec = {"vocab_size": 10 ** 6, "seq_len": 20}
    settings = ([{**fam.defaults, "ngram_max": 1, "max_features": 10 ** 6}] if family == "lyrics_tfidf_logreg" else
                [{**fam.defaults, "features": f, "max_features": 10 ** 6} for f in ("token_ids", "bow", "tfidf")])
    cache = optuna_engine.FeatureCache(fam, d.train.texts, d.val.texts + d.test.texts, spec)
    for params in settings:
        fitted = cache.get(params)[0]
        vocab = set(getattr(fitted, "vocab_", None) or fitted.vocabulary_)
        assert vocab & train_words and not vocab & held_out_only, params


def unique_images(n_classes=10, per_class=20, test_per_class=6):
    """Every image different, with an official test part."""
    x, y, names = images.make_demo_images(per_class=per_class + test_per_class, n_classes=n_classes, seed=5)
    is_test = np.concatenate([np.arange(per_class + test_per_class) >= per_class] * n_classes)
    return images.ImageSet(x, y, names, "unique", False, images.content_fingerprint(x, y, names, is_test), is_test)


def test_every_class_of_both_blocks_maps_back_to_its_own_label():
    source = unique_images()
    by_pixels = {img.tobytes(): i for i, img in enumerate(source.x)}
    assert len(by_pixels) == len(source.x)
    for block in (1, 2):
        b = images.make_block(source, block, seed=11)
        ids = b.assignment["class_ids"]
        assert sorted(ids) == ids and [source.class_names[c] for c in ids] == b.class_names
        for split_x, split_y, official in ((b.x_train, b.y_train, False), (b.x_val, b.y_val, False),
                                          (b.x_test, b.y_test, True)):
            assert set(np.unique(split_y)) == set(range(len(ids)))
            for img, label in zip(split_x, split_y):
                i = by_pixels[(img * 255).round().astype(np.uint8).tobytes()]
                assert source.y[i] == ids[label]  # the remapped label names the image's own class
                assert source.is_test[i] == official  # test = the official test images, and only they
        n_test = int(np.isin(source.y[source.is_test], ids).sum())
        assert len(b.y_test) == n_test and b.assignment["test_split"] == "the official test images"


def test_a_source_without_test_images_holds_out_a_seeded_part():
    demo = images.load_images("demo")
    b = images.make_block(demo, 1, seed=4)
    assert len(b.y_test) == 60 and "held out" in b.assignment["test_split"]


def test_cifar_archive_keeps_its_official_test_split_and_caps_both(tmp_path):
    import io
    import pickle
    import tarfile
    rng = np.random.default_rng(0)

    def batch(n):
        return {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"fine_labels": [i % 4 for i in range(n)]}
    path = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in (("train", batch(40)), ("test", batch(12)),
                          ("meta", {b"fine_label_names": [b"apple", b"bear", b"cloud", b"dolphin"]})):
            data = pickle.dumps(obj)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    s = images.load_images(path, cache_dir=tmp_path / "cache")
    assert int(s.is_test.sum()) == 12 and not s.is_test[:40].any()
    capped = images.load_images(path, cache_dir=tmp_path / "cache", per_class=2)
    assert int((~capped.is_test).sum()) == 8 and int(capped.is_test.sum()) == 8
    b = images.make_block(s, 1, seed=0)
    assert len(b.y_test) == 6 and len(b.y_train) + len(b.y_val) == 20


def test_cifar_search_records_its_test_split(tmp_path, cifar10_subset):
    res = tmp_path / "results"
    assert cli(["cifar_cnn", "--data", str(cifar10_subset), "--results-dir", str(res), "--max-trials", "1",
                "--epochs", "1", "--images-per-class", "12"]) == 0
    meta = json.loads((res / "cifar_cnn" / "best" / "meta.json").read_text())
    assert meta["data"]["test_split"] == "the official test images"
    assert meta["data"]["rows"]["test"] == 5 * 12 and meta["data"]["images_per_class"] == 12
    x_test, y_test = load_best("cifar_cnn", res).test_split(res)
    assert len(y_test) == 60


def test_repeated_songs_never_sit_in_two_splits(tmp_path):
    """Each song twice (the copy differs only in case, punctuation and line breaks, which cleaning removes):
    every repeat is removed before splitting and counted; no validation or test text is a training text."""
    rows = []
    for i in range(150):
        genre, lyric = GENRES[i % 3], f"Word{i} and song{i % 7} line{i}"
        copy = f"WORD{i} and\nSong{i % 7}, line{i}!!"
        rows.append({"Artist": "A", "Genre": genre, "Lyrics": lyric})
        rows.append({"Artist": "B", "Genre": genre if i % 10 else GENRES[(i + 1) % 3], "Lyrics": copy})
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    d = lyrics.load(tmp_path / "t.csv", cache_dir=tmp_path / "cache", seed=1)
    assert d.duplicates == {"removed": 150, "with_another_genre": 15}
    assert len(d.train.y) + len(d.val.y) + len(d.test.y) == 150
    train = set(d.train.texts)
    assert not train & set(d.val.texts) and not train & set(d.test.texts) and not set(d.val.texts) & set(d.test.texts)
    assert "150 repeated songs removed" in d.describe()
    # the first copy is the one kept: its artist and genre
    assert set(d.train.artists + d.val.artists + d.test.artists) == {"A"}

    test_rows = [{"Artist": "C", "Genre": GENRES[i % 3], "Lyrics": f"word{i} and Song{i % 7} line{i}"} for i in range(20)]
    test_rows += [{"Artist": "C", "Genre": GENRES[i % 3], "Lyrics": f"new{i} tune{i}"} for i in range(30)]
    pd.DataFrame(test_rows).to_csv(tmp_path / "test.csv", index=False)
    d = lyrics.load(tmp_path / "t.csv", tmp_path / "test.csv", cache_dir=tmp_path / "cache", seed=1)
    in_fit = set(d.train.texts) | set(d.val.texts)
    assert not in_fit & set(d.test.texts)
    assert d.duplicates["test_removed"] == sum(f"word{i} song{i % 7} line{i}" in in_fit for i in range(20))
    assert len(d.test.y) == 50 - d.duplicates["test_removed"]


def test_artist_ids_come_from_training_rows_only(tmp_path):
    """An artist first met in validation or test is the unseen artist (id 0), and the saved artist list holds
    the training artists alone."""
    from lyrics_cifar_search.runners import prepare
    from lyrics_cifar_search.runners.search import build_parser, data_options
    from lyrics_cifar_search.search_spaces import describe
    source_table(tmp_path / "t.csv")
    args = build_parser().parse_args(["lyrics_lstm", "--data", str(tmp_path / "t.csv"), "--with-artist",
                                      "--results-dir", str(tmp_path / "r"), "--seed", "3"])
    rows = pd.read_csv(tmp_path / "t.csv")
    rows.loc[rows.index % 4 == 1, "Artist"] = [f"Solo {i}" for i in range(int((rows.index % 4 == 1).sum()))]
    rows.to_csv(tmp_path / "t.csv", index=False)  # one-song artists: most land outside training
    p = prepare.prepare(describe("lyrics_lstm"), data_options(args))
    d = lyrics.load(tmp_path / "t.csv", cache_dir=tmp_path / "r" / "_cache", seed=3)
    known = json.loads(p.artifacts["artists.json"])
    assert known == sorted(set(d.train.artists))
    only_held_out = set(d.val.artists) - set(d.train.artists)
    assert only_held_out  # the case the test is about occurs
    ids = p.x_val["artist"].ravel().tolist()
    assert ids == [known.index(a) + 1 if a in known else 0 for a in d.val.artists]
    assert p.spec["n_artists"] == len(known) + 1


def test_artist_variant_post_pads_as_the_study_did(tmp_path):
    """The study's artist notebook post-padded its lyrics (pad_sequences(..., padding='post')); its plain one
    pre-padded. The study's pipeline reproduces both; the suite's pre-pads always. Same words, same order."""
    from lyrics_cifar_search.runners import prepare
    from lyrics_cifar_search.runners.search import build_parser, data_options
    from lyrics_cifar_search.search_spaces import describe
    source_table(tmp_path / "t.csv")

    def prepared(*extra):
        args = build_parser().parse_args(["lyrics_lstm", "--data", str(tmp_path / "t.csv"), "--results-dir",
                                          str(tmp_path / "r"), *extra])
        return prepare.prepare(describe("lyrics_lstm"), data_options(args))

    plain, artist, suite = prepared(), prepared("--with-artist"), prepared("--with-artist", "--text-pipeline", "suite")
    assert (plain.meta["padding"], artist.meta["padding"], suite.meta["padding"]) == ("pre", "post", "pre")
    short = [i for i, row in enumerate(plain.x_train["lyrics"]) if row[0] == 0]  # songs shorter than seq_len
    assert short
    for i in short:
        pre, post = plain.x_train["lyrics"][i], artist.x_train["lyrics"][i]
        n = int((pre != 0).sum())
        assert (post[:n] == pre[-n:]).all() and (post[n:] == 0).all()


@pytest.mark.parametrize("flags", [[], ["--with-artist", "--languages", "en", "--stopwords", "none", "--no-clean",
                                        "--vocab-size", "500", "--seq-len", "50", "--sample-fraction", "0.5",
                                        "--text-pipeline", "suite", "--seed", "3", "--objective", "val_macro_f1",
                                        "--epochs", "2", "--text-column", "Lyrics"]])
def test_a_saved_search_gives_back_the_data_options_it_ran_with(tmp_path, flags):
    """What `compare.py --repeats` retrains on: the options rebuilt from meta.json are the command line's."""
    from lyrics_cifar_search.runners import prepare
    from lyrics_cifar_search.runners.search import build_parser, data_options
    from lyrics_cifar_search.search_spaces import describe
    source_table(tmp_path / "t.csv")
    args = build_parser().parse_args(["lyrics_lstm", "--data", str(tmp_path / "t.csv"), "--results-dir",
                                      str(tmp_path / "r"), *flags])
    given = data_options(args)
    first = prepare.prepare(describe("lyrics_lstm"), given)
    meta = json.loads(json.dumps(first.meta))  # as saved
    rebuilt = prepare.DataOptions.from_meta(meta, tmp_path / "r")
    again = prepare.prepare(describe("lyrics_lstm"), rebuilt)
    assert json.loads(json.dumps(again.meta)) == meta and again.record == first.record
    assert np.array_equal(again.x_val["lyrics"], first.x_val["lyrics"])
    if flags:  # every option given: the same options, not only the same effect
        assert rebuilt == given


@pytest.mark.slow
def test_the_search_selects_on_validation_never_on_test(tmp_path, real_lyrics):
    """Issue 41: every trial is scored on the validation rows, and best/ is the best of those scores. The test
    rows are disjoint from them and enter no score the search ranks by: the recorded scores of the best and
    the baseline models are their accuracies on the validation rows (a search fed the test rows as its
    validation would record their test accuracies)."""
    import numpy as np

    from lyrics_cifar_search.analysis.best_model import load_best
    from lyrics_cifar_search.runners.search import cli
    from lyrics_cifar_search.study_data import lyrics
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(real_lyrics), "--results-dir", str(res), "--max-trials", "6",
                "--sampler", "random"]) == 0
    rows = pd.read_csv(res / "lyrics_tfidf_logreg" / "trials.csv")
    assert not [c for c in rows.columns if c.startswith("test")]  # no test score where the search ranks
    d = lyrics.load(real_lyrics, cache_dir=res / "_cache")
    assert not set(d.val.rows) & set(d.test.rows)
    for folder in ("best", "baseline"):
        model = load_best(str(res / "lyrics_tfidf_logreg" / folder))
        on_val = float(np.mean(model.model.predict(d.val.texts) == d.val.y))  # the fitted pipeline on the
        on_test = float(np.mean(model.model.predict(d.test.texts) == d.test.y))  # cleaned texts it was fitted on
        recorded = model.meta["metrics"]["val_accuracy"]
        assert recorded == pytest.approx(on_val) and recorded != pytest.approx(on_test)
    best = rows.loc[rows["status"] == "COMPLETE", "val_accuracy"].max()
    assert load_best("lyrics_tfidf_logreg", res).meta["metrics"]["val_accuracy"] == pytest.approx(best)


def test_test_images_copied_into_training_are_dropped_with_a_count(capsys):
    """Issue 41: a user's archive with its test images also among the training ones put them into training
    (53 of 53 test copies there). Exact copies are dropped from training and validation, and counted."""
    rng = np.random.default_rng(5)
    n_test = 40
    test_x = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    train_x = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    x = np.concatenate([train_x, test_x, test_x])  # every test image copied into the training part
    y = np.concatenate([np.arange(200) % 4, np.arange(n_test) % 4, np.arange(n_test) % 4])
    is_test = np.concatenate([np.zeros(200 + n_test, bool), np.ones(n_test, bool)])
    names = ["a", "b", "c", "d"]
    source = images.ImageSet(x, y, names, "copied", False, images.content_fingerprint(x, y, names, is_test), is_test)
    for block in (1, 2):
        b = images.make_block(source, block, seed=3)
        seen = {t.tobytes() for t in b.x_test}
        assert not any(t.tobytes() in seen for t in np.concatenate([b.x_train, b.x_val]))
        assert not {t.tobytes() for t in b.x_val} & {t.tobytes() for t in b.x_train}
        assert len(b.x_test) == int((is_test & np.isin(y, b.assignment["class_ids"])).sum())  # test kept whole
    err = capsys.readouterr().err
    assert "exact copies of a test image" in err
    dropped = sum(int(line.split("dropped ")[1].split()[0]) + int(line.split(" and ")[1].split()[0])
                  for line in err.splitlines() if "exact copies" in line)
    assert dropped == n_test


@pytest.mark.slow
def test_artist_coverage_is_reported_and_a_low_one_warned(tmp_path, capsys):
    """Issue 41: with --with-artist, the share of validation and test rows whose artist was seen in training is
    said when the data is prepared, in the search's summary and in the comparison table, with a warning when
    it is low (one-song artists: most land outside training)."""
    from lyrics_cifar_search.analysis import compare
    from lyrics_cifar_search.runners.search import cli
    from lyrics_cifar_search.study_data import lyrics
    source_table(tmp_path / "t.csv")
    rows = pd.read_csv(tmp_path / "t.csv")
    rows.loc[rows.index % 4 != 0, "Artist"] = [f"Solo {i}" for i in range(int((rows.index % 4 != 0).sum()))]
    rows.to_csv(tmp_path / "t.csv", index=False)
    res = tmp_path / "r"
    assert cli(["lyrics_tfidf_logreg", "--data", str(tmp_path / "t.csv"), "--with-artist", "--results-dir",
                str(res), "--max-trials", "1"]) == 0
    captured = capsys.readouterr()
    d = lyrics.load(tmp_path / "t.csv", cache_dir=res / "_cache")
    known = set(d.train.artists)
    val = sum(a in known for a in d.val.artists) / len(d.val.artists)
    test = sum(a in known for a in d.test.artists) / len(d.test.artists)
    assert min(val, test) < 0.5  # the case the test is about
    assert f"artists seen in training: {val:.0%} of the validation rows, {test:.0%} of the test rows" in captured.out
    assert "warning: only" in captured.err and "the artist can add little" in captured.err
    assert f"artists   seen in training: {val:.0%} of the validation rows" in captured.out
    table = compare.compare(res)["comparison_lyrics"]
    assert table["artist_seen_val"].iloc[0] == pytest.approx(val)
    assert table["artist_seen_test"].iloc[0] == pytest.approx(test)
