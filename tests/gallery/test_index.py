"""The faiss gallery index against a brute-force search written here, and its commands."""

import io
import json
import os
import shutil

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from keras_reid.cli import main
from keras_reid.data.images import load_image
from keras_reid.errors import ReIDError
from keras_reid.evaluation.metrics import evaluate
from keras_reid.serving.extractor import FeatureExtractor
from keras_reid.serving.gallery import FeatureSet, model_fingerprint, write_features
from keras_reid.serving.gallery.index import GalleryIndex
from keras_reid.serving.gallery.search import evaluate_with_index, search_images
from tests.console import run

RNG = np.random.default_rng(0)


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def table_of(count, pids=None, camids=None):
    return pd.DataFrame(
        {
            "path": [f"/gallery/{i:05d}.jpg" for i in range(count)],
            "pid": np.arange(count) % 37 if pids is None else pids,
            "camid": np.arange(count) % 6 if camids is None else camids,
            "dataset": "toy",
        }
    )


def brute_force(queries, gallery, top):
    """(ids, scores) of the ``top`` largest inner products, by sorting every one."""
    products = unit(queries) @ gallery.T
    ids = np.argsort(-products, axis=1, kind="stable")[:, :top]
    return ids, np.take_along_axis(products, ids, axis=1)


def clustered(count, dim, clusters, seed):
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(clusters, dim)))
    members = rng.integers(0, clusters, count)
    return unit(centres[members] + 0.15 * rng.normal(size=(count, dim))), members


def test_exact_hits_and_scores_are_the_brute_force_ones():
    gallery = unit(RNG.normal(size=(600, 24)))
    table = table_of(600)
    queries = RNG.normal(size=(15, 24)) * 3  # not unit length: the score is still a cosine
    index = GalleryIndex.build(gallery, table)
    hits = index.search(queries, top=7)

    ids, scores = brute_force(queries, gallery, 7)
    assert len(hits) == 15 * 7
    assert hits["query"].tolist() == np.repeat(np.arange(15), 7).tolist()
    assert hits["rank"].tolist() == [*range(1, 8)] * 15
    assert hits["path"].tolist() == table["path"].to_numpy()[ids.ravel()].tolist()
    assert hits["pid"].tolist() == table["pid"].to_numpy()[ids.ravel()].tolist()
    assert hits["camid"].tolist() == table["camid"].to_numpy()[ids.ravel()].tolist()
    np.testing.assert_allclose(hits["score"], scores.ravel(), atol=1e-5)
    # top beyond the gallery: every row once
    assert len(index.search(queries[:1], top=10_000)) == 600


@pytest.mark.parametrize(
    "kind, params", [("hnsw", {"m": 16}), ("ivf", {"nlist": 40, "nprobe": 16})]
)
def test_approximate_recall_at_10_on_a_clustered_gallery(kind, params):
    # 4,000 embeddings in 200 tight clusters, like one model's images of 200
    # people; queries from the same clusters. Bound: at least 95% of the
    # brute-force top 10 found (measured 1.000 for hnsw, 0.989 for ivf).
    gallery, _ = clustered(4000, 32, 200, seed=1)
    queries, _ = clustered(200, 32, 200, seed=1)  # same seed: same centres
    queries = unit(queries + 0.05 * RNG.normal(size=queries.shape))
    index = GalleryIndex.build(gallery, table_of(4000), kind=kind, **params)
    found = index.search(queries, top=10)
    ids, _ = brute_force(queries, gallery, 10)
    row_of = {path: i for i, path in enumerate(index.table["path"])}
    hits = sum(
        len(set(ids[q]) & {row_of[p] for p in group["path"]}) for q, group in found.groupby("query")
    )
    assert hits / ids.size >= 0.95
    assert index.recall(queries, top=10) == pytest.approx(hits / ids.size)


def test_save_and_load_keep_the_index_its_rows_and_its_record(tmp_path):
    gallery = unit(RNG.normal(size=(300, 16)))
    table = table_of(300).assign(extra=np.arange(300) * 2)
    meta = {"model": "/m.keras", "model_name": "m", "model_sha256": "ab" * 32, "tta": "flip"}
    index = GalleryIndex.build(gallery, table, meta=meta, kind="hnsw", ef_search=64)
    folder = index.save(tmp_path / "index")
    assert sorted(os.listdir(folder)) == ["faiss.index", "index.json", "rows.parquet"]

    loaded = GalleryIndex.load(folder)
    queries = unit(RNG.normal(size=(5, 16)))
    pd.testing.assert_frame_equal(loaded.search(queries, 5), index.search(queries, 5))
    pd.testing.assert_frame_equal(loaded.table, table)
    record = json.loads((tmp_path / "index" / "index.json").read_text())
    assert record["kind"] == "hnsw" and record["params"]["ef_search"] == 64
    assert (record["dim"], record["rows"], record["tta"]) == (16, 300, "flip")
    assert record["model_sha256"] == "ab" * 32

    with pytest.raises(ReIDError, match="exists and is not empty.*--overwrite"):
        index.save(folder)
    GalleryIndex.build(gallery[:10], table[:10]).save(folder, overwrite=True)
    assert len(GalleryIndex.load(folder)) == 10
    assert [n for n in os.listdir(tmp_path) if n != "index"] == []  # no temporary left
    with pytest.raises(ReIDError, match="is not a gallery index"):
        GalleryIndex.load(tmp_path)


def feature_set(dim=8, rows=20, model="/a.keras", sha="a" * 64, normalized=True, tta=None):
    meta = {"model": model, "model_sha256": sha, "dim": dim, "normalized": normalized}
    meta["tta"] = tta
    return FeatureSet(table_of(rows), unit(RNG.normal(size=(rows, dim))), meta)


def test_features_of_other_models_dimensions_or_unnormalised_are_refused():
    with pytest.raises(ReIDError, match=r"^features of different models: /b.keras .* /a.keras"):
        GalleryIndex.build([feature_set(), feature_set(model="/b.keras", sha="b" * 64)])
    with pytest.raises(ReIDError, match="/b.keras have dimension 16 but those of /a.keras have 8"):
        GalleryIndex.build([feature_set(), feature_set(16, model="/b.keras")])
    with pytest.raises(ReIDError, match="not L2-normalised.*--no-normalize"):
        GalleryIndex.build(feature_set(normalized=False))
    with pytest.raises(ReIDError, match="row 3 has norm 2"):
        gallery = unit(RNG.normal(size=(5, 4)))
        gallery[3] *= 2
        GalleryIndex.build(gallery, table_of(5))
    both = GalleryIndex.build([feature_set(), feature_set(rows=5)])
    assert len(both) == 25 and both.table["path"].tolist()[20] == "/gallery/00000.jpg"

    index = GalleryIndex.build(feature_set())
    with pytest.raises(ReIDError, match="dimension 9 but the index holds 8-dimensional"):
        index.search(np.ones((1, 9)))
    with pytest.raises(ReIDError, match="gives 16-dimensional embeddings .* from /a.keras"):
        index.check_model("a" * 64, 16, "/c.keras")
    with pytest.raises(ReIDError, match=r"built from features of /a.keras .* is /c.keras"):
        index.check_model("c" * 64, 8, "/c.keras")
    with pytest.raises(ReIDError, match="unknown parameter.*nlist for a hnsw index"):
        GalleryIndex.build(feature_set(), kind="hnsw", nlist=4)


def test_protocol_scores_from_the_index_equal_evaluate():
    # 40 people seen by 4 cameras, distractors (pid 0) and junk (pid -1).
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(41, 32))
    g_pids = np.concatenate([np.repeat(np.arange(1, 41), 6), [0] * 30, [-1] * 20])
    g_cams = rng.integers(0, 4, len(g_pids))
    q_pids, q_cams = np.repeat(np.arange(1, 41), 2), rng.integers(0, 4, 80)
    gallery = unit(centres[np.abs(g_pids)] + 0.9 * rng.normal(size=(len(g_pids), 32)))
    query = unit(centres[q_pids] + 0.9 * rng.normal(size=(80, 32)))
    g_table, q_table = table_of(len(g_pids), g_pids, g_cams), table_of(80, q_pids, q_cams)

    expected = evaluate(query, gallery, q_table, g_table, metric="cosine")
    assert 0.2 < expected["mAP"][0] < 0.9  # a ranking with mistakes to get right
    index = GalleryIndex.build(gallery, g_table)
    columns = ["rank1", "rank5", "rank10", "mAP", "mINP", "rank1_nd", "mAP_nd", "num_valid"]
    for search_all in (False, True):
        row = evaluate_with_index(index, query, q_table, search_all=search_all)
        for column in columns:
            assert row[column][0] == pytest.approx(expected[column][0], abs=1e-6), column
    row = evaluate_with_index(index, query, q_table)
    assert row[columns].equals(expected[columns])  # the same matrix product: bit for bit
    for block in (1, 7, 80):  # one query at a time, uneven blocks, all at once
        row = evaluate_with_index(index, query, q_table, block_queries=block)
        assert row[columns].equals(expected[columns]), block


def tiny_model(dim=6, seed=0):
    keras.utils.set_random_seed(seed)
    images = keras.Input((16, 8, 3), name="images")
    x = keras.layers.Rescaling(1 / 255)(images)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(images, {"embedding": keras.layers.Dense(dim, name="embedding")(x)})


@pytest.fixture(scope="module")
def gallery_files(tmp_path_factory):
    """Eight image files, their features written as embed does, and the model."""
    base = tmp_path_factory.mktemp("index")
    model = tiny_model()
    model_path = str(base / "model.keras")
    model.save(model_path)
    paths = []
    for i in range(8):
        image = np.random.default_rng(i).integers(0, 256, (24 + i, 12, 3), dtype=np.uint8)
        paths.append(str(base / f"{i}.png"))
        cv2.imwrite(paths[-1], image)
    table = pd.DataFrame({"path": paths, "pid": [3, 3, 5, 5, 7, 7, 9, 0], "camid": [*range(8)]})
    table["dataset"] = "toy"
    embeddings = FeatureExtractor(model_path).embed(paths)
    meta = {
        "model": model_path,
        "model_name": model.name,
        "model_sha256": model_fingerprint(model),
        "dim": 6,
        "normalized": True,
        "tta": None,
        "image_size": [16, 8],
        "data": "toy",
        "split": "gallery",
        "rows": 8,
        "shard": 0,
        "num_shards": 1,
        "start": 0,
        "stop": 8,
        "batch_size": 128,
    }
    write_features(str(base / "features" / "part-00000-of-00001.parquet"), table, embeddings, meta)
    return {"base": base, "model": model_path, "table": table, "embeddings": embeddings}


def test_the_commands_build_an_index_and_name_the_nearest_images(gallery_files, capsys):
    base, table = gallery_files["base"], gallery_files["table"]
    assert main(["index", "build", str(base / "features"), "--out", str(base / "idx")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {base / 'idx'}: exact index of 8 6-d embeddings")
    # The search as a user runs it: the installed command in its own process.
    query = table["path"][4]
    code, out, err = run(["search", base / "idx", "--model", gallery_files["model"], query])
    assert code == 0 and err == "", err  # not even faiss's loader lines
    lines = out.splitlines()
    assert lines[0] == f"query 1: {query}"
    assert lines[1].split() == ["rank", "score", "pid", "camid", "path", "dataset"]
    assert lines[2].split() == ["1", "1.0000", "7", "4", query, "toy"]

    # Independently: the other 7 in the order of the brute-force search.
    ids, scores = brute_force(gallery_files["embeddings"][4:5], gallery_files["embeddings"], 8)
    expected = [
        [str(r + 1), f"{s:.4f}", str(table.pid[i]), str(table.camid[i]), table.path[i], "toy"]
        for r, (i, s) in enumerate(zip(ids[0], scores[0], strict=True))
    ]
    assert [line.split() for line in lines[2:]] == expected


def test_search_refuses_another_model_and_unreadable_images(gallery_files, tmp_path, capsys):
    base, model = gallery_files["base"], gallery_files["model"]
    if not (base / "idx").exists():
        assert main(["index", "build", str(base / "features"), "--out", str(base / "idx")]) == 0
    capsys.readouterr()
    image = gallery_files["table"]["path"][0]

    def error_of(args):
        assert main(args) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    other = str(tmp_path / "other.keras")
    tiny_model(seed=1).save(other)
    line = error_of(["search", str(base / "idx"), "--model", other, image])
    assert f"built from features of {model}" in line and f"the query model is {other}" in line
    wider = str(tmp_path / "wider.keras")
    tiny_model(dim=9).save(wider)
    line = error_of(["search", str(base / "idx"), "--model", wider, image])
    assert "gives 9-dimensional embeddings but the index holds 6-dimensional" in line
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    line = error_of(["search", str(base / "idx"), "--model", model, str(broken)])
    assert str(broken) in line
    line = error_of(["search", str(base / "idx"), "--model", model, str(tmp_path / "no.jpg")])
    assert str(tmp_path / "no.jpg") in line and "not found" in line
    line = error_of(["index", "build", str(base / "features"), "--out", str(base / "idx")])
    assert "exists and is not empty" in line

    hits = search_images(str(base / "idx"), model, [image], top=2)
    assert hits["path"].tolist()[0] == image and hits["query_path"].tolist() == [image] * 2
    with pytest.raises(ReIDError, match="built from features"):
        search_images(str(base / "idx"), other, [image])


def test_csv_and_json_hits_and_damaged_indexes(gallery_files, tmp_path, capsys):
    base, table, model = gallery_files["base"], gallery_files["table"], gallery_files["model"]
    folder = tmp_path / "idx"
    assert main(["index", "build", str(base / "features"), "--out", str(folder)]) == 0
    queries = [table["path"][1], table["path"][6]]
    ids, scores = brute_force(gallery_files["embeddings"][[1, 6]], gallery_files["embeddings"], 3)
    capsys.readouterr()

    for form, read in (("csv", pd.read_csv), ("json", lambda s: pd.read_json(s, lines=True))):
        assert (
            main(
                ["search", str(folder), "--model", model, *queries, "--top", "3"]
                + ["--format", form]
            )
            == 0
        )
        hits = read(io.StringIO(capsys.readouterr().out))
        assert hits["query_path"].tolist() == [queries[0]] * 3 + [queries[1]] * 3, form
        assert hits["rank"].tolist() == [1, 2, 3] * 2, form
        assert hits["path"].tolist() == table["path"].to_numpy()[ids.ravel()].tolist(), form
        assert hits["pid"].tolist() == table["pid"].to_numpy()[ids.ravel()].tolist(), form
        np.testing.assert_allclose(hits["score"], scores.ravel(), atol=1e-5)

    def error_of(args):
        assert main(args) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    (folder / "faiss.index").write_bytes(b"damaged")
    line = error_of(["search", str(folder), "--model", model, queries[0]])
    assert "faiss.index is not a readable faiss index" in line and "build it again" in line
    (folder / "rows.parquet").unlink()
    line = error_of(["search", str(folder), "--model", model, queries[0]])
    assert "is not a gallery index (no rows.parquet)" in line


def test_a_truncated_rows_file_or_another_index_s_faiss_file_is_one_line(gallery_files, tmp_path):
    base, table, model = gallery_files["base"], gallery_files["table"], gallery_files["model"]
    built = tmp_path / "built"
    assert main(["index", "build", str(base / "features"), "--out", str(built)]) == 0
    # Another model's index of the same size: 8 rows of dimension 6.
    other = GalleryIndex.build(unit(RNG.normal(size=(8, 6))), table).save(tmp_path / "other")
    swapped, truncated = tmp_path / "swapped", tmp_path / "truncated"
    shutil.copytree(built, swapped)
    shutil.copy(os.path.join(other, "faiss.index"), swapped / "faiss.index")
    shutil.copytree(built, truncated)
    rows = (built / "rows.parquet").read_bytes()
    (truncated / "rows.parquet").write_bytes(rows[: len(rows) // 2])

    query = table["path"][0]
    code, out, err = run(["search", swapped, "--model", model, query], tmp_path / "err.txt")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"keras-reid search: error: {swapped / 'faiss.index'} is not the file keras-reid index "
        "build wrote there (its SHA-256 differs from the one in index.json); build the index "
        "again."
    ]
    code, out, err = run(["search", truncated, "--model", model, query])
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(
        f"keras-reid search: error: {truncated / 'rows.parquet'} is not a readable Parquet file ("
    )
    assert lines[0].endswith("); build the index again.")

    # An index written before the checksum was recorded still loads.
    record = json.loads((built / "index.json").read_text())
    del record["faiss_sha256"]
    (built / "index.json").write_text(json.dumps(record))
    ids, _ = brute_force(gallery_files["embeddings"][:1], gallery_files["embeddings"], 3)
    hits = GalleryIndex.load(built).search(gallery_files["embeddings"][:1], top=3)
    assert hits["path"].tolist() == table["path"].to_numpy()[ids[0]].tolist()


def test_search_embeds_queries_with_the_index_tta_unless_told(gallery_files):
    table, model = gallery_files["table"], gallery_files["model"]
    gallery = gallery_files["embeddings"]
    keras_model = keras.models.load_model(model)
    meta = {"model": model, "model_sha256": model_fingerprint(keras_model), "tta": "flip"}
    flipped = GalleryIndex.build(gallery, table, meta=meta)
    query = table["path"][2]
    # Independently: the model on the decoded image and on its mirror, by hand.
    image = load_image(query, (16, 8)).numpy()[None]
    raw = [keras_model.predict(x, verbose=0)["embedding"] for x in (image, image[:, :, ::-1])]
    plain, with_flip = unit(raw[0]), unit((raw[0] + raw[1]) / 2)
    assert not np.allclose(plain, with_flip, atol=1e-3)  # the mirror changes the query
    for tta, embedded in (("index", with_flip), (None, plain), ("flip", with_flip)):
        hits = search_images(flipped, model, [query], top=8, tta=tta)
        ids, scores = brute_force(embedded, gallery, 8)
        assert hits["path"].tolist() == table["path"].to_numpy()[ids[0]].tolist(), tta
        np.testing.assert_allclose(hits["score"], scores[0], atol=1e-5)
