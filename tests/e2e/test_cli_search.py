"""`xsearch search` from the CLI on an indexed generated world: every direction, fusion, filters, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MODS = ("image", "audio", "text")
FILE_KEY = {"image": "image", "audio": "audio", "text": "text_file"}


def _search(cli, indexed, *args):
    r = cli("search", *args, "-c", indexed, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _query_args(record, world: Path, modality: str) -> list[str]:
    if modality == "text":
        return [record["text"][0]]
    return [f"--{modality}", str(world / record[modality])]


def _same_attributes(path: str, record: dict, by_path: dict) -> bool:
    return by_path[path]["attributes"] == record["attributes"]


@pytest.fixture(scope="module")
def by_path(world, manifest_records):
    out = {}
    for r in manifest_records:
        for m in MODS:
            out[str((world / r[FILE_KEY[m]]).absolute())] = r
    return out


@pytest.mark.parametrize("query", MODS)
@pytest.mark.parametrize("target", MODS)
def test_every_direction_finds_the_matching_item(cli, indexed, world, manifest_records, by_path, query, target):
    """For held-out (test split) groups, an item with the query's exact attributes is in the top 5."""
    groups = [r for r in manifest_records if r["split"] == "test"][:5]
    assert len(groups) == 5
    found = 0
    for rec in groups:
        out = _search(cli, indexed, *_query_args(rec, world, query), "--to", target, "-k", "5")
        hits = out["results"][target]
        assert len(hits) == 5
        assert all(h["modality"] == target for h in hits)
        assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
        assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:]))
        found += any(_same_attributes(h["path"], rec, by_path) for h in hits)
    assert found >= 4, f"{query}->{target}: only {found}/5 queries found their match in the top 5"


def test_to_all_returns_one_list_per_modality(cli, indexed, manifest_records):
    out = _search(cli, indexed, manifest_records[0]["text"][0], "--to", "all", "-k", "3")
    assert set(out["results"]) == set(MODS)
    assert all(len(v) == 3 for v in out["results"].values())


def test_audio_results_report_window_offset_and_duration(cli, indexed, manifest_records):
    hits = _search(cli, indexed, manifest_records[0]["text"][0], "--to", "audio", "-k", "2")["results"]["audio"]
    assert all(h["offset"] == 0.0 and h["duration"] == pytest.approx(2.0) for h in hits)


def test_table_output_is_readable(cli, indexed, manifest_records):
    r = cli("search", manifest_records[0]["text"][0], "-c", indexed, "-k", "3")
    assert r.code == 0
    assert "→ image" in r.out and ".png" in r.out and "score" in r.out


def _top_paths(cli, indexed, *args, k=5):
    return [h["path"] for h in _search(cli, indexed, *args, "--to", "image", "-k", str(k))["results"]["image"]]


def test_feature_fusion_weights_change_the_result(cli, indexed, manifest_records):
    a, b = manifest_records[3]["text"][0], manifest_records[7]["text"][0]
    assert manifest_records[3]["attributes"] != manifest_records[7]["attributes"]
    only_a = _top_paths(cli, indexed, a, k=3)
    only_b = _top_paths(cli, indexed, b, k=3)
    assert _top_paths(cli, indexed, a, b, "--weight", "1,0", k=3) == only_a
    assert _top_paths(cli, indexed, a, b, "--weight", "0,1", k=3) == only_b
    assert _top_paths(cli, indexed, a, b, "--weight", "1,0", k=3) != _top_paths(cli, indexed, a, b, "--weight", "0,1",
                                                                                  k=3)


def test_negative_weight_subtracts_a_concept(cli, indexed, world, manifest_records, by_path):
    rec = manifest_records[0]
    colour = rec["attributes"]["colour"]
    base = _top_paths(cli, indexed, rec["text"][0], k=10)
    minus = _top_paths(cli, indexed, rec["text"][0], f"a {colour} shape", "--weight", "1,-0.8", k=10)
    share = lambda paths: sum(by_path[p]["attributes"]["colour"] == colour for p in paths)  # noqa: E731
    assert share(minus) < share(base)


@pytest.mark.parametrize("fusion", ["weighted", "rrf", "vote"])
def test_decision_fusion_respects_weights(cli, indexed, manifest_records, fusion):
    a, b = manifest_records[3]["text"][0], manifest_records[7]["text"][0]
    heavy_a = _top_paths(cli, indexed, a, b, "--fusion", fusion, "--weight", "5,1", k=1)
    heavy_b = _top_paths(cli, indexed, a, b, "--fusion", fusion, "--weight", "1,5", k=1)
    assert heavy_a == _top_paths(cli, indexed, a, k=1)
    assert heavy_b == _top_paths(cli, indexed, b, k=1)


def test_image_and_text_query_together(cli, indexed, world, manifest_records):
    rec = manifest_records[5]
    out = _search(cli, indexed, rec["text"][0], "--image", world / rec["image"], "--weight", "0.7,0.3", "--to", "audio")
    assert out["weights"] == [0.7, 0.3] and len(out["results"]["audio"]) == 10


def test_threshold_and_filters(cli, indexed, manifest_records):
    q = manifest_records[0]["text"][0]
    hits = _search(cli, indexed, q, "--threshold", "0.5", "-k", "50")["results"]["image"]
    assert hits and all(h["score"] >= 0.5 for h in hits)
    assert len(hits) < 50
    glob = _search(cli, indexed, q, "--path-glob", "g00000*", "-k", "50")["results"]["image"]
    assert glob and all(Path(h["path"]).name.startswith("g00000") for h in glob)
    assert not _search(cli, indexed, q, "--to", "audio", "--min-duration", "3")["results"]["audio"]


def test_k_larger_than_collection_is_capped_with_one_note(cli, indexed):
    r = cli("search", "red", "-c", indexed, "-k", "1000", "--json")
    assert r.code == 0, r.err
    assert r.err.strip().splitlines() == ["note: -k 1000 capped to 90: the collection holds 90 image file(s)."]
    assert len(json.loads(r.out)["results"]["image"]) == 90  # a script gets all there is


def test_k_larger_than_collection_for_similar(cli, indexed, world, manifest_records):
    r = cli("similar", str(world / manifest_records[0]["image"]), "-c", indexed, "-k", "91", "--json")
    assert r.code == 0 and "capped to 90" in r.err
    assert len(json.loads(r.out)["results"]["image"]) == 89  # the file itself is left out


def test_filters_leaving_fewer_than_k_give_a_note(cli, indexed, manifest_records):
    q = manifest_records[0]["text"][0]
    r = cli("search", q, "-c", indexed, "--path-glob", "g00000*", "-k", "50", "--json")
    assert r.code == 0 and 0 < len(json.loads(r.out)["results"]["image"]) < 50
    assert "fewer than -k 50" in r.err


@pytest.mark.parametrize("args, message", [
    (["", "--to", "image"], "empty text query"),
    (["   "], "empty text query"),
    ([], "no query"),
    (["--image", "/nonexistent/q.png"], "query file not found"),
    (["red", "-k", "0"], "-k must be at least 1"),
    (["red", "-k", "-3"], "-k must be at least 1"),
    (["red", "--to", "sound"], "--to 'sound'"),
    (["red", "blue", "--weight", "1"], "--weight has 1 value(s) but there are 2 queries"),
    (["red", "--weight", "x"], "--weight"),
    (["red", "--fusion", "magic"], "unknown --fusion"),
])
def test_bad_queries_fail_with_one_line(cli, indexed, args, message):
    r = cli("search", *args, "-c", indexed)
    assert r.code == 2
    assert message in r.err
    assert r.err.count("\n") == 1 and "Traceback" not in r.err


def test_query_file_of_the_wrong_modality(cli, indexed, world, manifest_records):
    r = cli("search", "--image", world / manifest_records[0]["audio"], "-c", indexed)
    assert r.code == 2 and "is audio, not image; pass it with --audio" in r.err


def test_corrupt_query_file(cli, indexed, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    r = cli("search", "--image", bad, "-c", indexed)
    assert r.code == 2 and str(bad) in r.err and "Traceback" not in r.err


def test_uninitialised_collection(cli, tmp_path):
    r = cli("search", "red", "-c", tmp_path / "nothing-here")
    assert r.code == 1 and "no collection at" in r.err


def test_target_modality_the_collection_lacks(cli, tmp_path, world, manifest_records):
    col = tmp_path / "images-only"
    assert cli("index", world, "-c", col, "--model", "builtin", "--include", "*.png", "--workers", "0").code == 0
    r = cli("search", "red", "--to", "audio", "-c", col)
    assert r.code == 2 and "no audio items" in r.err
    assert cli("search", "red", "--to", "all", "-c", col, "--json").code == 0


def test_similar_and_duplicates(cli, indexed, world, manifest_records, tmp_path):
    img = (world / manifest_records[2]["image"]).absolute()
    r = cli("similar", img, "-c", indexed, "-k", "3", "--json")
    assert r.code == 0
    out = json.loads(r.out)
    assert out["queries"] == [{"modality": "image", "value": str(img)}] and out["weights"] == [1.0]
    assert set(out) == {"queries", "weights", "fusion", "results"}  # the layout of `search --json`
    hits = out["results"]["image"]
    assert len(hits) == 3 and str(img) not in [h["path"] for h in hits]
    # same item, other modality: the sound of that very group should be near the top
    r = cli("similar", img, "--to", "audio", "-c", indexed, "-k", "5", "--json")
    assert r.code == 0 and len(json.loads(r.out)["results"]["audio"]) == 5
    r = cli("duplicates", "-c", indexed, "--threshold", "0.999", "--json")
    assert r.code == 0 and json.loads(r.out) == []
    r = cli("duplicates", "-c", indexed, "--threshold", "0.5", "--json")
    pairs = json.loads(r.out)
    assert pairs and all(p["score"] >= 0.5 and p["a"] != p["b"] for p in pairs)
