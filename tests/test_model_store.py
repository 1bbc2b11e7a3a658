"""Every kept trial's model in Optuna's artifact store (issue 50): --keep-models K, --artifact-store, load_best's
trial= and rank= (and storage=, from any folder, whichever host trained the model), optuna-dashboard's view of
them; a store that is missing, read-only or full is one line; a kill mid-upload leaves no false claim; a
tampered artifact is refused as a tampered best/ is."""

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import optuna
import pandas as pd
import pytest

from lyrics_cifar_search.runners import model_store
from lyrics_cifar_search.runners.best_model import load_best
from lyrics_cifar_search.runners.search import cli
from lyrics_cifar_search.suite_common import UserError

ROOT = Path(__file__).resolve().parents[1]
FAMILY = "lyrics_tfidf_logreg"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def search(data, res, trials, *extra):
    return cli([FAMILY, "--data", str(data), "--results-dir", str(res), "--max-trials", str(trials), "--quiet",
                *extra])


def study_of(res, name=FAMILY, url=None):
    return optuna.load_study(study_name=name, storage=url or f"sqlite:///{res / 'optuna.db'}")


def ranked(trials):
    """trials.csv's finished trial ids, best first (accuracy, ties by trial id): what rank=k counts."""
    done = trials[trials["status"] == "COMPLETE"].sort_values(["val_accuracy", "trial_id"],
                                                                ascending=[False, True])
    return [int(t) for t in done["trial_id"]]


def stored(store):
    return {p.name for p in Path(store).iterdir() if not p.name.startswith(".")}


def claims(study):
    return {t.number: t.user_attrs[model_store.CLAIM] for t in study.trials if model_store.CLAIM in t.user_attrs}


def test_keep_models_keeps_the_k_best_and_the_baseline_each_loadable_by_rank_or_trial(tmp_path, small_lyrics):
    res = tmp_path / "res"
    assert search(small_lyrics, res, 8, "--keep-models", "3") == 0
    trials = pd.read_csv(res / FAMILY / "trials.csv")
    order = ranked(trials)
    study = study_of(res)
    kept = set(order[:3]) | {0}  # the three best and the baseline
    # the store holds exactly the kept trials' models; every other trial's file is gone
    assert stored(res / "artifacts") == {claims(study)[n] for n in kept}
    # a model is uploaded only by a trial that was among the three best when it ended (or the baseline)
    done = trials[trials["status"] == "COMPLETE"]
    for _, row in done.iterrows():
        earlier = done[done["trial_id"] < row["trial_id"]]
        ahead = int((earlier["val_accuracy"] >= row["val_accuracy"]).sum())  # ties: the earlier trial ranks first
        uploaded = any(k.startswith("artifacts:") for k in study.trials[int(row["trial_id"])].system_attrs)
        assert uploaded == (ahead < 3 or row["trial_id"] == 0), row["trial_id"]
    for k in (1, 2, 3):
        model = load_best(FAMILY, res, rank=k)
        assert model.meta["trial_id"] == order[k - 1]
        scores, _, _ = model.score_test(res)  # a real model, scored on the held-out rows
        assert 0 <= scores["test_accuracy"] <= 1
    assert load_best(FAMILY, res, trial=0).meta["is_baseline"]
    assert load_best(FAMILY, res, rank=1).predict(["love"]) == load_best(FAMILY, res).predict(["love"])  # = best/
    out = order[4]
    with pytest.raises(UserError, match=f"trial {out} of {FAMILY} \\(rank 5\\): its model was not kept "
                                        "\\(--keep-models 3 .*--keep-models 5 or more"):
        load_best(FAMILY, res, trial=out)
    for bad, says in ((dict(rank=0), "from 1"), (dict(trial=99), "no trial 99"), (dict(rank=9), "rank is 1")):
        with pytest.raises(UserError, match=says):
            load_best(FAMILY, res, **bad)


def test_the_default_keeps_todays_models_and_a_pareto_search_keeps_its_front(tmp_path, small_lyrics):
    res = tmp_path / "res"
    assert search(small_lyrics, res, 6) == 0
    best = json.loads((res / FAMILY / "best" / "meta.json").read_text())["trial_id"]
    # the defaults keep best/ and baseline/ alone, as before: no store, no second copy on disk
    assert not (res / "artifacts").exists() and not claims(study_of(res))
    assert load_best(FAMILY, res, trial=best).folder == (res / FAMILY / "best").resolve()
    assert load_best(FAMILY, res, trial=0).folder == (res / FAMILY / "baseline").resolve()
    order = ranked(pd.read_csv(res / FAMILY / "trials.csv"))
    out = next(k for k, n in enumerate(order, start=1) if n not in (best, 0))  # the best trial neither folder holds
    with pytest.raises(UserError, match=f"its model was not kept \\(--keep-models 1 .*--keep-models {out} or more"):
        load_best(FAMILY, res, rank=out)
    pareto = tmp_path / "pareto"
    assert search(small_lyrics, pareto, 8, "--objective", "val_accuracy,params") == 0
    study = study_of(pareto)
    front = {t.number for t in study.best_trials}
    assert stored(pareto / "artifacts") == {claims(study)[n] for n in front | {0}}
    for n in front:  # load_best(family, trial=N) loads any model of the front
        assert load_best(FAMILY, pareto, trial=n).meta["trial_id"] == n


def test_optuna_dashboard_shows_each_kept_trials_model_file(tmp_path, small_lyrics):
    dashboard = pytest.importorskip("optuna_dashboard")
    from wsgiref.util import setup_testing_defaults
    res = tmp_path / "res"
    assert search(small_lyrics, res, 4, "--keep-models", "4") == 0
    app = dashboard.wsgi(f"sqlite:///{res / 'optuna.db'}", artifact_store=model_store.FolderStore(res / "artifacts"))

    def get(path):
        environ, said = {"PATH_INFO": path, "QUERY_STRING": "after=0"}, {}
        setup_testing_defaults(environ)
        body = b"".join(app(environ, lambda status, headers, exc_info=None: said.update(status=status)))
        return said["status"], body

    study = study_of(res)
    status, body = get(f"/api/studies/{study._study_id}")
    assert status.startswith("200"), body[:2000]
    listed = {t["number"]: t["artifacts"] for t in json.loads(body)["trials"]}
    assert all(len(listed[n]) == 1 and listed[n][0]["filename"] == f"model-trial-{n}.zip" for n in range(4))
    t0 = study.trials[0]
    status, body = get(f"/artifacts/{study._study_id}/{t0._trial_id}/{listed[0][0]['artifact_id']}")
    assert status.startswith("200") and "meta.json" in zipfile.ZipFile(io.BytesIO(body)).namelist()


def _worker(data, res, url, store, trials, *extra):
    return subprocess.Popen([sys.executable, str(ROOT / "runners" / "search.py"), FAMILY, "--data", str(data),
                             "--results-dir", str(res), "--max-trials", str(trials), "--storage", url,
                             "--artifact-store", str(store), "--quiet", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def two_hosts(tmp_path, data, url, named=False):
    """Two processes in results folders of their own (two hosts, no shared results folder), one study at `url`
    and one store, one after the other (the second a --worker, as on a second host); then load_best from a third
    folder. named: the storage holds other searches of the family, so load_best is given study=."""
    store = tmp_path / "shared-store"
    store.mkdir()
    owner = _worker(data, tmp_path / "host-a", url, store, 8, "--keep-models", "2")
    out, err = owner.communicate(timeout=300)
    assert owner.returncode == 0, err[-2000:]
    other = _worker(data, tmp_path / "host-b", url, store, 16, "--keep-models", "2", "--worker")
    out, err = other.communicate(timeout=300)
    assert other.returncode == 0, err[-2000:]
    assert (tmp_path / "host-a" / FAMILY / "best").is_dir() and (tmp_path / "host-b" / FAMILY / "best").is_dir()
    owned = str((tmp_path / "host-a" / FAMILY).resolve())
    name = next(s.study_name for s in optuna.get_all_study_summaries(url) if s.user_attrs.get("results_folder") == owned)
    study = optuna.load_study(study_name=name, storage=url)
    done = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: (-t.values[0], t.number))
    assert len(done) == 16
    third = tmp_path / "host-c"  # nothing there: the record and the store say it all
    pick = {"study": name} if named else {}
    model = load_best(FAMILY, third, storage=url, artifact_store=str(store), **pick)
    assert model.meta["trial_id"] == done[0].number
    assert model.predict(["love"])[0] in model.label_names
    assert load_best(FAMILY, third, storage=url, rank=2, **pick).meta["trial_id"] == done[1].number  # recorded store
    # one set of models for the search: the two best and the baseline, whichever host trained them
    assert stored(store) == {t.user_attrs[model_store.CLAIM] for t in done[:2] + [study.trials[0]]}


@pytest.mark.slow  # subprocesses
def test_two_hosts_sharing_a_sqlite_file_and_a_store_end_with_one_set_of_models(tmp_path, small_lyrics):
    two_hosts(tmp_path, small_lyrics, f"sqlite:///{tmp_path / 'shared.db'}")


def one_line(capsys, *says):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for s in says:
        assert s in err, err


def test_a_missing_or_read_only_store_is_one_line_and_loses_nothing(tmp_path, small_lyrics, capsys):
    res, store = tmp_path / "res", tmp_path / "store"
    store.mkdir()
    assert search(small_lyrics, res, 2, "--artifact-store", str(store)) == 0
    before, kept = (res / FAMILY / "trials.csv").read_bytes(), stored(store)
    capsys.readouterr()
    store.rename(tmp_path / "away")  # the store is gone (unmounted, say)
    assert search(small_lyrics, res, 4, "--artifact-store", str(store)) == 2
    one_line(capsys, "--artifact-store", "no such folder")
    (tmp_path / "away").rename(store)
    assert search(small_lyrics, res, 4) == 2  # a resume may not move the models elsewhere
    one_line(capsys, "--artifact-store (where the kept models are): was")
    if subprocess.run(["chattr", "+i", str(store)], capture_output=True).returncode == 0:
        try:  # read-only, for root too
            assert search(small_lyrics, res, 4, "--artifact-store", str(store)) == 2
            one_line(capsys, f"cannot write models to the artifact store {store}")
        finally:
            subprocess.run(["chattr", "-i", str(store)], capture_output=True)
    assert (res / FAMILY / "trials.csv").read_bytes() == before and stored(store) == kept
    assert load_best(FAMILY, res, trial=0).meta["trial_id"] == 0  # the finished models are where they were
    for where, says in (("/proc", "cannot write models to the artifact store /proc"), ("s3://", "name a bucket")):
        assert search(small_lyrics, tmp_path / "other", 2, "--artifact-store", where) == 2
        one_line(capsys, says)


@pytest.mark.slow  # subprocesses
def test_a_full_store_is_one_line_and_no_trial_claims_a_model_it_lacks(tmp_path, small_lyrics):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=60k", "tmpfs", str(tiny)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        res = tmp_path / "res"
        p = _worker(small_lyrics, res, f"sqlite:///{tmp_path / 's.db'}", tiny, 12, "--keep-models", "12")
        out, err = p.communicate(timeout=300)
        assert p.returncode == 2 and "Traceback" not in err, err[-2000:]
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "No space left" in errors[0], err
        study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{tmp_path / 's.db'}")[0],
                                  storage=f"sqlite:///{tmp_path / 's.db'}")
        claimed = claims(study)
        assert claimed and set(claimed.values()) == stored(tiny)  # each claim has its file, and only those
        rows = pd.read_csv(res / FAMILY / "trials.csv")
        assert set(rows.loc[rows["status"] == "COMPLETE", "trial_id"]) == set(claimed)  # finished rows kept
    finally:
        subprocess.run(["umount", str(tiny)], capture_output=True)


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("point", ["artifact-half-written", "artifact-uploaded"])
def test_a_kill_during_an_upload_leaves_no_trial_claiming_a_model_it_lacks(tmp_path, small_lyrics, point):
    res = tmp_path / "res"
    base = [sys.executable, str(ROOT / "runners" / "search.py"), FAMILY, "--data", str(small_lyrics),
            "--results-dir", str(res), "--max-trials", "4", "--keep-models", "4", "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SEARCH_SUITE_CRASH_AT": point, "SEARCH_SUITE_CRASH_SKIP": "1"}
    killed = subprocess.run(base, capture_output=True, text=True, timeout=300, env=env)
    assert killed.returncode == 137  # died like kill -9 during the second trial's upload
    study = study_of(res)
    assert set(claims(study).values()) <= stored(res / "artifacts")  # no claim without its file
    assert 1 not in claims(study)  # the killed trial claims nothing
    resumed = subprocess.run(base, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    study = study_of(res)
    done = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 4 and set(claims(study)) >= set(done)
    for n in done:
        assert load_best(FAMILY, res, trial=n).meta["trial_id"] == n


def test_a_tampered_artifact_is_refused_as_a_tampered_best_model_is(tmp_path, small_lyrics):
    res = tmp_path / "res"
    assert search(small_lyrics, res, 5, "--keep-models", "5") == 0
    best = json.loads((res / FAMILY / "best" / "meta.json").read_text())["trial_id"]
    one, two = [n for n in (1, 2, 3, 4) if n != best][:2]  # kept in the store alone (not best/, not baseline/)
    artifact = res / "artifacts" / claims(study_of(res))[one]

    def rewrite(change):
        with zipfile.ZipFile(artifact) as z:
            files = {n: z.read(n) for n in z.namelist()}
        change(files)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n, b in files.items():
                z.writestr(n, b)
        artifact.write_bytes(buf.getvalue())

    original = artifact.read_bytes()
    rewrite(lambda f: f.update({"../escape.txt": b"x"}))  # a path outside the folder
    with pytest.raises(UserError, match="not a model this suite saved .*'../escape.txt'"):
        load_best(FAMILY, res, trial=one)
    artifact.write_bytes(original)
    rewrite(lambda f: f.update({"meta.json": f["meta.json"].replace(b'"label_names": [', b'"label_names": 7, "x": [')}))
    with pytest.raises(UserError, match="is damaged"):  # best_model.check_meta, as for best/
        load_best(FAMILY, res, trial=one)
    artifact.write_bytes(original)
    swapped = res / "artifacts" / claims(study_of(res))[two]
    kept = swapped.read_bytes()
    swapped.write_bytes(original)  # one trial's model under another's claim
    with pytest.raises(UserError, match=f"says it is trial {one}'s"):
        load_best(FAMILY, res, trial=two)
    swapped.write_bytes(kept)
    import skops.io as sio  # a model file of a type the suite never saves: refused by the skops check, unloaded
    from sklearn.preprocessing import FunctionTransformer
    foreign = tmp_path / "foreign.skops"
    sio.dump(FunctionTransformer(), foreign)
    rewrite(lambda f: f.update({"model.skops": foreign.read_bytes()}))
    with pytest.raises(UserError, match="holds types that the suite's models never contain"):
        load_best(FAMILY, res, trial=one)


def test_a_keras_search_keeps_its_trials_models_too(tmp_path, small_lyrics):
    res = tmp_path / "res"
    assert cli(["lyrics_embedding", "--data", str(small_lyrics), "--results-dir", str(res), "--max-trials", "3",
                "--epochs", "1", "--keep-models", "3", "--quiet"]) == 0
    study = study_of(res, "lyrics_embedding")
    assert set(claims(study)) == {0, 1, 2} and stored(res / "artifacts") == set(claims(study).values())
    best = json.loads((res / "lyrics_embedding" / "best" / "meta.json").read_text())["trial_id"]
    for n in {1, 2} - {best}:  # from the store alone: a Keras model, checked and loaded in safe mode
        model = load_best("lyrics_embedding", res, trial=n)
        assert model.meta["trial_id"] == n and model.meta["model_file"] == "model.keras"
        assert model.predict_proba(["love"]).shape == (1, len(model.label_names))


def test_an_s3_compatible_bucket_keeps_the_models(tmp_path, small_lyrics, monkeypatch):
    """--artifact-store s3://BUCKET through boto3, against an S3-compatible server on loopback (moto's)."""
    boto3 = pytest.importorskip("boto3")
    server = pytest.importorskip("moto.server")
    s3 = server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    s3.start()
    try:
        host, port = s3.get_host_and_port()
        for k, v in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                     "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(k, v)
        client = boto3.client("s3")
        client.create_bucket(Bucket="models")
        res = tmp_path / "res"
        assert search(small_lyrics, res, 5, "--keep-models", "2", "--artifact-store", "s3://models") == 0
        study = study_of(res)
        order = ranked(pd.read_csv(res / FAMILY / "trials.csv"))
        keys = {o["Key"] for o in client.list_objects_v2(Bucket="models").get("Contents", [])}
        assert keys == {claims(study)[n] for n in set(order[:2]) | {0}}
        assert load_best(FAMILY, tmp_path / "elsewhere", storage=f"sqlite:///{res / 'optuna.db'}",
                         rank=2).meta["trial_id"] == order[1]  # the store the study recorded: the bucket
        assert search(small_lyrics, tmp_path / "r2", 2, "--artifact-store", "s3://no-such-bucket") == 2
    finally:
        s3.stop()


def test_a_worker_whose_store_is_another_says_so(tmp_path, capsys):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    model_store.record_store(study, model_store.open_store(str(tmp_path / "a"), tmp_path, keep=2), worker=False)
    assert study.user_attrs["artifact_store"] == str((tmp_path / "a").resolve()) and study.user_attrs["keep_models"] == 2
    model_store.record_store(study, model_store.open_store(str(tmp_path / "a"), tmp_path), worker=True)
    assert "this worker's go to" not in capsys.readouterr().err
    model_store.record_store(study, model_store.open_store(str(tmp_path / "b"), tmp_path), worker=True)
    assert f"the search keeps its models in {(tmp_path / 'a').resolve()}; this worker's go to" in capsys.readouterr().err
    assert study.user_attrs["artifact_store"] == str((tmp_path / "a").resolve())  # a worker does not move it


@pytest.mark.parametrize("flags, says", [
    (["--keep-models", "0"], "--keep-models: must be at least 1"),
    (["--keep-models", "two"], "--keep-models: expected a whole number"),
    (["--keep-models", "2", "--tuner", "random"], "Keras Tuner's own random keeps best/ alone"),
    (["--artifact-store", "s3://bucket/prefix"], "name a bucket alone"),
])
def test_bad_model_flags_get_one_line_and_write_nothing(tmp_path, small_lyrics, capsys, flags, says):
    family = "lyrics_embedding" if "--tuner" in flags else FAMILY
    assert cli([family, "--data", str(small_lyrics), "--results-dir", str(tmp_path / "res"), *flags]) == 2
    one_line(capsys, says)
    assert not (tmp_path / "res").exists()
