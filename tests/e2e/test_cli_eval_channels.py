"""`xsearch eval --channels`: vector, keyword and hybrid search side by side (xsearch/evaluation/channels.py)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import one_line_error


@pytest.mark.slow  # every direction of the main table, three channel directions, then a table: ~15 s on 2 busy cores
def test_eval_channels_side_by_side_and_the_hybrid_default_keeps_r1(cli, world):
    r = cli("eval", "--manifest", world / "manifest.jsonl", "--channels", "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    channels = rep["channels"]["directions"]
    assert set(channels) == {"text→image", "text→audio", "text→text"}  # every direction whose query is text
    for name, by_channel in channels.items():
        assert list(by_channel) == ["vector", "keyword", "hybrid"]
        for m in by_channel.values():
            assert {"R@1", "R@5", "queries"} <= set(m) and m["queries"] > 0
        assert by_channel["hybrid"]["R@1"] >= by_channel["vector"]["R@1"], name  # the default loses nothing
    assert channels["text→image"]["keyword"]["R@1"] == 0.0  # the world's pictures carry no words, names no signal
    assert channels["text→text"]["keyword"]["R@5"] > 0.0  # captions do share words
    assert rep["channels"]["gallery_size"]["image"] == rep["gallery_size"]["image"]
    r = cli("eval", "--manifest", world / "manifest.jsonl", "--channels", "--directions", "text:image")
    assert r.code == 0, r.err
    assert "search channels" in r.out and "keyword" in r.out and "hybrid" in r.out and "text→text" not in r.out


def test_eval_channels_json_and_usage_errors(cli, world):
    r = cli("eval", "--manifest", world / "manifest.jsonl", "--channels", "--directions", "text:image", "--json")
    by_channel = json.loads(r.out)["channels"]["directions"]["text→image"]
    assert list(by_channel) == ["vector", "keyword", "hybrid"] and by_channel["keyword"]["R@1"] == 0.0
    assert by_channel["hybrid"]["R@1"] == by_channel["vector"]["R@1"] > 0.5  # no word matched: the vector order
    r = cli("eval", "--manifest", world / "manifest.jsonl", "--channels", "--aligner", "cca")
    one_line_error(r, 2, "--aligner model")
    r = cli("eval", "--manifest", world / "manifest.jsonl", "--channels", "--directions", "image:audio")
    one_line_error(r, 2, "query is text")
