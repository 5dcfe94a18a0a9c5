"""The cross-attention re-ranker (model, loading, the search hook, the CLI) and hybrid fusion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xsearch.core.types import Query
from xsearch.encoders.reranker import (
    ITEM_TYPES,
    QUERY_TYPES,
    Reranker,
    RerankerConfig,
    RerankerModel,
    default_reranker_dir,
    load_reranker,
    save_reranker,
)

SHIPPED = (default_reranker_dir() / "model.safetensors").is_file()


def _unit(*shape, seed=0):
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _records(world):
    return [json.loads(line) for line in (world / "manifest.jsonl").read_text().splitlines() if line.strip()]


# -- the model -------------------------------------------------------------------------------------------------


def test_model_shapes_and_masks():
    cfg = RerankerConfig(dim=32, width=16, heads=2)
    model = RerankerModel(cfg).eval()
    b, q, n = 5, 3, 4
    qv, cv = torch.from_numpy(_unit(b, q, 32)), torch.from_numpy(_unit(b, n, 32, seed=1))
    q_mask = torch.tensor([[True, True, False]] * b)
    c_mask = torch.tensor([[True] * k + [False] * (n - k) for k in (1, 2, 3, 4, 4)])
    args = (qv, torch.zeros(b, q, dtype=torch.long), torch.ones(b, q), q_mask, cv,
            torch.full((b, n), ITEM_TYPES.index("audio")), c_mask)
    out = model(*args)
    assert out.shape == (b,) and torch.isfinite(out).all()
    # padding is ignored: changing a masked query or item changes nothing
    qv2, cv2 = qv.clone(), cv.clone()
    qv2[:, 2] = torch.from_numpy(_unit(b, 32, seed=3))
    cv2[0, 1:] = torch.from_numpy(_unit(n - 1, 32, seed=4))
    out2 = model(qv2, *args[1:4], cv2, *args[5:])
    assert torch.allclose(out, out2, atol=1e-5)


def test_untrained_model_ranks_like_the_mean_query():
    """The MLP's last layer starts at zero: score = scale · cos(weighted-mean query, best item)."""
    model = RerankerModel(RerankerConfig(dim=32, width=16, heads=2))
    reranker = Reranker(model, {}, None, "cpu")
    q = _unit(2, 32)
    cands = [[("image", _unit(1, 32, seed=i + 10))] for i in range(6)] + [[("audio", _unit(3, 32, seed=99))]]
    scores = reranker.score([("text", q[0], 1.0), ("image", q[1], 1.0)], cands)
    fused = (q[0] + q[1]) / np.linalg.norm(q[0] + q[1])
    expected = [10.0 * float((c[0][1] @ fused).max()) for c in cands]
    assert scores.shape == (7,) and np.allclose(scores, expected, atol=1e-4)


def test_score_caps_items_and_types():
    cfg = RerankerConfig(dim=16, width=8, heads=2, max_items=4)
    reranker = Reranker(RerankerModel(cfg), {}, None, "cpu")
    many = _unit(50, 16)
    scores = reranker.score([("video", _unit(16), 1.0), ("other-kind", _unit(16, seed=2), 0.5)],
                            [[("video", many[:30]), ("soundtrack", many[30:])], [("image", many[:1])], []])
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert QUERY_TYPES[-1] == "other" and ITEM_TYPES[-1] == "other"


def test_save_and_load_roundtrip(tmp_path):
    model = RerankerModel(RerankerConfig(dim=16, width=8, heads=2))
    save_reranker(model, tmp_path / "r", meta={"encoder_model_id": "m@1:16"})
    loaded = load_reranker(tmp_path / "r", "cpu")
    assert loaded.model_id == "m@1:16" and loaded.cfg.width == 8
    loaded.check_encoder("m@1:16", 16)
    from xsearch.core.errors import UsageError

    with pytest.raises(UsageError) as e:
        loaded.check_encoder("other@2:16", 16)
    assert e.value.code == "rerank.model_mismatch"


@pytest.mark.parametrize("what", ["missing", "config", "arch", "weights"])
def test_bad_checkpoints_are_model_errors(tmp_path, what):
    from xsearch.core.errors import ModelError

    d = tmp_path / "r"
    save_reranker(RerankerModel(RerankerConfig(dim=16, width=8, heads=2)), d)
    if what == "missing":
        (d / "model.safetensors").unlink()
    elif what == "config":
        (d / "config.json").write_text("{not json")
    elif what == "arch":
        (d / "config.json").write_text(json.dumps({"architecture": "xsearch-builtin-v1"}))
    else:
        (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError) as e:
        load_reranker(d)
    assert e.value.code == ("rerank.missing" if what == "missing" else "rerank.bad_checkpoint")
    assert "\n" not in str(e.value)


# -- the search hook -------------------------------------------------------------------------------------------


class _ReverseReranker:
    """Scores candidates by the reverse of the order they come in (and records what it was given)."""

    model_id = ""

    def __init__(self):
        self.calls = []

    def check_encoder(self, model_id, dim):
        pass

    def score(self, queries, candidates):
        self.calls.append((queries, candidates))
        return np.arange(len(candidates), dtype=np.float32)


def test_rerank_reorders_by_its_scores_and_keeps_k(indexed):
    from xsearch.engine import Engine

    eng = Engine(indexed)
    plain = eng.search([Query("text", "a red circle")], to="image", k=60)["image"]
    eng._reranker = stub = _ReverseReranker()
    hits = eng.search([Query("text", "a red circle")], to="image", k=5, rerank=True)["image"]
    (queries, candidates), = stub.calls
    assert len(candidates) == 50 and all(c and c[0][0] == "image" and c[0][1].shape == (1, 256) for c in candidates)
    assert [m for m, _, _ in queries] == ["text"]
    assert len(hits) == 5 and [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.path for h in hits] == [h.path for h in plain[:50]][::-1][:5]  # reversed: the 50th comes first
    assert [h.score for h in hits] == [49.0, 48.0, 47.0, 46.0, 45.0]
    assert hits[0].retrieval_score == pytest.approx(plain[49].score, abs=1e-5)
    assert hits[0].to_dict()["retrieval_score"] == hits[0].retrieval_score


def test_rerank_with_fewer_files_than_the_depth(indexed, tmp_path):
    """k above 50 reads k candidates; a filter leaving a few files re-ranks just those."""
    from xsearch.core.types import Filters
    from xsearch.engine import Engine

    eng = Engine(indexed)
    eng._reranker = stub = _ReverseReranker()
    hits = eng.search([Query("text", "a red circle")], to="audio", k=70, rerank=True)["audio"]
    assert len(hits) == 70 and len(stub.calls[-1][1]) == 70
    hits = eng.search([Query("text", "a red circle")], to="image", k=3, rerank=True,
                      filters=Filters(path_glob="g00000[0-4].png"))["image"]
    assert len(stub.calls[-1][1]) == 5 and len(hits) == 3


def test_rerank_argument_is_checked(indexed):
    from xsearch.core.errors import UsageError
    from xsearch.engine import Engine

    with pytest.raises(UsageError) as e:
        Engine(indexed).search([Query("text", "a red circle")], rerank="yes")
    assert e.value.code == "usage.bad_value"


def test_reranker_of_another_model_is_refused(indexed, tmp_path, cli):
    save_reranker(RerankerModel(RerankerConfig(dim=256)), tmp_path / "other",
                  meta={"encoder_model_id": "builtin@000000000000:256"})
    r = cli("search", "a red circle", "-c", indexed, "--reranker", tmp_path / "other", "--json")
    assert r.code == 2
    assert json.loads(r.out)["error"]["code"] == "rerank.model_mismatch"
    r = cli("search", "a red circle", "-c", indexed, "--reranker", tmp_path / "nothing-here")
    assert r.code == 1 and r.err.count("\n") == 1 and "no re-ranker at" in r.err


@pytest.mark.skipif(not SHIPPED, reason="no shipped re-ranker in this checkout")
def test_cli_rerank_with_the_shipped_model(indexed, world, cli):
    rec = _records(world)[0]
    r = cli("search", rec["text"][0], "--audio", world / rec["audio"], "-c", indexed, "-k", "4", "--rerank",
            "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    hits = out["results"]["image"]
    assert len(hits) == 4 and out["rerank"]["id"].startswith("xsearch-reranker-v1@")
    assert all("retrieval_score" in h for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    first = next(x for x in _records(world) if hits[0]["path"].endswith("/" + x["image"]))
    assert first["attributes"] == rec["attributes"]  # the group itself (or its twin) comes first
    r = cli("search", rec["text"][0], "-c", indexed, "-k", "3", "--rerank")
    assert r.code == 0 and "(re-ranked)" in r.out


def test_train_a_tiny_reranker_and_search_with_it(world, indexed, tmp_path, cli):
    from xsearch.encoders.registry import load_encoder
    from xsearch.train.reranker import RerankArgs, train_reranker

    args = RerankArgs(out_dir=str(tmp_path / "rr"), manifest=str(world / "manifest.jsonl"), epochs=1, sets_per_epoch=48,
                      val_sets=24, batch_size=16, width=16, partial_per_group=1, threads=2)
    report = train_reranker(args, load_encoder("builtin"), log=lambda m: None)
    assert set(report["metrics"]["val"]) == {"single", "pair", "combo"}
    loaded = load_reranker(tmp_path / "rr")
    assert loaded.model_id == load_encoder("builtin").model_id and loaded.cfg.width == 16
    r = cli("search", "a red circle", "-c", indexed, "-k", "3", "--reranker", tmp_path / "rr", "--json")
    assert r.code == 0, r.err
    assert len(json.loads(r.out)["results"]["image"]) == 3
    with pytest.raises(Exception) as e:  # refuses to overwrite without being asked
        train_reranker(args, load_encoder("builtin"), log=lambda m: None)
    assert getattr(e.value, "code", "") == "train.out_exists"


def test_partial_captions():
    from xsearch.train.reranker import partial_caption

    a = {"colour": "orange", "shape": "circle", "size": "small", "count": 2, "position": "left",
         "background": "striped"}
    assert partial_caption(a, {"colour", "shape"}) == "orange circles"
    assert partial_caption(a, {"count", "size"}) == "two small shapes"
    assert partial_caption(a, {"background"}) == "shapes on a striped background"
    assert partial_caption({**a, "count": 1}, {"count", "colour"}) == "one orange shape"


# -- hybrid fusion ---------------------------------------------------------------------------------------------


def test_fuse_hybrid_counts_the_mean_list_as_much_as_all_per_query_lists():
    from xsearch.engine.fusion import FUSIONS, RRF_K, fuse_hybrid

    assert "hybrid" in FUSIONS
    merged = dict(fuse_hybrid(["a", "b", "c"], [["b", "c"], ["c", "b"]], [1.0, 1.0], 3))
    assert merged["a"] == pytest.approx(1 / (RRF_K + 1))
    assert merged["b"] == pytest.approx(1 / (RRF_K + 2) + 0.5 / (RRF_K + 1) + 0.5 / (RRF_K + 2))
    assert list(dict(fuse_hybrid(["a", "b"], [["b"]], [3.0], 2))) == ["b", "a"]


def test_cli_hybrid_fusion(indexed, world, cli):
    rec = _records(world)[3]
    common = (rec["text"][0], "--audio", world / rec["audio"], "-c", indexed, "-k", "5", "--json")
    r = cli("search", *common, "--fusion", "hybrid")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    hits = out["results"]["image"]
    assert out["fusion"] == "hybrid" and len(hits) == 5 and len({h["path"] for h in hits}) == 5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert hits[0]["path"].endswith(rec["image"].rsplit("/", 1)[-1])  # both queries point at the same group
    assert hits[0]["score"] <= 2 / 61 + 1e-9  # a reciprocal-rank score: at most rank 1 in every list
    r = cli("search", "a red circle", "-c", indexed, "--fusion", "hybrid", "--weight", "2", "-k", "2", "--json")
    assert r.code == 0 and len(json.loads(r.out)["results"]["image"]) == 2  # one query: the mean list
    r = cli("search", "a", "b", "-c", indexed, "--fusion", "bogus")
    assert r.code == 2 and "hybrid" in r.err


@pytest.mark.skipif(not SHIPPED, reason="no shipped re-ranker in this checkout")
def test_cli_hybrid_with_rerank(indexed, world, cli):
    rec = _records(world)[5]
    r = cli("search", rec["text"][0], "--image", world / rec["image"], "--to", "audio", "-c", indexed, "-k", "3",
            "--fusion", "hybrid", "--rerank", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    hits = out["results"]["audio"]
    assert len(hits) == 3 and "hybrid" in out["rerank"]["score"]
    assert all(h["score"] > h["retrieval_score"] for h in hits)  # the re-ranker's list adds 1 / (60 + rank)


def test_saved_checkpoint_is_readable_like_its_config(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        save_reranker(RerankerModel(RerankerConfig(dim=8, width=8)), tmp_path / "rr", meta={"encoder_model_id": "x"})
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "rr").iterdir()}
    assert modes == {"model.safetensors": 0o644, "config.json": 0o644}
