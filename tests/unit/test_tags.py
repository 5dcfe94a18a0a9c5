"""Zero-shot tags: `xsearch tag`, Engine.tag, the --tag search filter, tag counts in info and stats."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from xsearch.core.types import Filters, Query

COLOURS = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink"]


@pytest.fixture
def col(indexed, tmp_path):
    """A writable copy of the indexed small world."""
    dst = tmp_path / "col"
    shutil.copytree(indexed, dst)
    return dst


def _attributes(world):
    out = {}
    for line in (world / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            for key in ("image", "audio", "text_file"):
                out[(world / r[key]).name] = r["attributes"]
    return out


def test_engine_tag_stores_top_tags(col, world):
    from xsearch.engine import Engine

    seen = []
    with Engine(col) as eng:
        report = eng.tag(COLOURS, top=2, on_progress=lambda done, total: seen.append((done, total)))
        assert report["files"] == 270 and report["tagged"] == 270 and report["labels"] == COLOURS
        assert report["tracks"] == {"image": 90, "audio": 90, "text": 90}
        assert seen[-1][0] == seen[-1][1] == 270
        store = eng.store()
        truth = _attributes(world)
        right = {"image": 0, "audio": 0, "text": 0}
        for f in store.files():
            tags = store.tags_of(f.id)
            assert len(tags) == 2 and tags[0][1] >= tags[1][1] and all(t in COLOURS for t, _ in tags)
            assert all(-1.0 <= s <= 1.0 for _, s in tags)
            right[f.modality] += tags[0][0] == truth[f.path.rsplit("/", 1)[-1]]["colour"]
        assert all(n / 90 > 0.5 for n in right.values()), right  # chance is 1/8
        stats = eng.stats()
        assert sum(stats["tags"].values()) == 2 * 270 and set(stats["tags"]) <= set(COLOURS)
        # filtering by a tag returns only files carrying it
        hits = eng.search([Query("text", "a shape")], to="image", k=90, filters=Filters(tag="red"))["image"]
        assert hits and len(hits) < 90
        for h in hits:
            assert "red" in [t for t, _ in store.tags_of(store.file(h.path).id)]
        # tagging again replaces the tags; a high --min-score leaves files untagged
        report = eng.tag(["red"], top=3, min_score=0.999)
        assert report["tagged"] + report["untagged"] == 270 and report["untagged"] > 0
        assert sum(eng.stats()["tags"].values()) == report["tagged"]


@pytest.mark.parametrize("labels, top, min_score, code", [
    ([], 3, None, "tag.no_labels"),
    (["", "  ", "\t"], 3, None, "tag.no_labels"),
    ([3], 3, None, "tag.bad_label"),
    (["dog"], 0, None, "usage.bad_value"),
    (["dog"], 1.5, None, "usage.bad_value"),
    (["dog"], 3, math.nan, "usage.bad_value"),
    (["dog"], 3, math.inf, "usage.bad_value"),
])
def test_engine_tag_bad_arguments(col, labels, top, min_score, code):
    from xsearch.core.errors import UsageError
    from xsearch.engine import Engine

    with pytest.raises(UsageError) as e:
        Engine(col).tag(labels, top=top, min_score=min_score)
    assert e.value.code == code and "\n" not in str(e.value)


def test_engine_tag_needs_a_collection(tmp_path):
    from xsearch.core.errors import CollectionError
    from xsearch.engine import Engine

    with pytest.raises(CollectionError) as e:
        Engine(tmp_path / "nothing").tag(["dog"])
    assert e.value.code == "collection.missing"


def test_cli_tag_search_filter_and_info(col, world, cli, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("# world colours\nred\nblue\n\ngreen\nred\n")
    r = cli("tag", "-c", col, "--labels", labels, "--top", "1", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["labels"] == ["red", "blue", "green"] and report["files"] == 270
    assert sum(report["tag_counts"].values()) == 270
    r = cli("search", "a shape", "-c", col, "--to", "audio", "--tag", "blue", "-k", "90", "--json")
    assert r.code == 0, r.err
    hits = json.loads(r.out)["results"]["audio"]
    assert hits
    from xsearch.engine import Engine

    store = Engine(col).store()
    assert all(store.tags_of(store.file(h["path"]).id)[0][0] == "blue" for h in hits)
    assert len(hits) <= report["tag_counts"]["blue"]
    r = cli("search", "a shape", "-c", col, "--tag", "no-such-tag", "--json")
    assert r.code == 0 and json.loads(r.out)["results"]["image"] == []
    r = cli("info", "-c", col, "--json")
    assert json.loads(r.out)["collection"]["tags"] == report["tag_counts"]
    r = cli("info", "-c", col)
    assert r.code == 0 and "tags: 3" in r.out and "red" in r.out
    r = cli("tag", "-c", col, "--labels", "red, blue , cyan")
    assert r.code == 0 and "tagged 270 of 270 file(s)" in r.out and "cyan" in r.out


@pytest.mark.parametrize("args, code, text", [
    (["--labels", ""], "tag.no_labels", "no labels"),
    (["--labels", " , ,"], "tag.no_labels", "no labels"),
    (["--labels", "missing-labels.txt"], "tag.labels_file_missing", "labels file not found"),
    (["--labels", "sub/dir/labels"], "tag.labels_file_missing", "labels file not found"),
    (["--labels", "dog", "--top", "0"], "usage.bad_value", "--top must be at least 1"),
    (["--labels", "dog", "--min-score", "nan"], "usage.bad_value", "--min-score must be a finite number"),
    (["--labels", "dog", "--min-score", "inf"], "usage.bad_value", "--min-score must be a finite number"),
])
def test_cli_tag_bad_input(col, cli, args, code, text):
    r = cli("tag", "-c", col, *args)
    assert r.code == 2 and r.err.count("\n") == 1 and text in r.err and "Traceback" not in r.err
    r = cli("tag", "-c", col, *args, "--json")
    assert r.code == 2 and json.loads(r.out)["error"]["code"] == code


def test_cli_tag_missing_collection(cli, tmp_path):
    r = cli("tag", "-c", tmp_path / "none", "--labels", "dog")
    assert r.code == 1 and r.err.count("\n") == 1 and "no collection" in r.err
