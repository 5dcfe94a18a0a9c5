"""The relevance cue (xsearch.engine.relevance) on the generated world: a held-out caption's own item clears the
calibrated gap, a mismatched item mostly does not, nonsense gets "nothing here looks like"."""

from __future__ import annotations

import json
import random

from xsearch.core.types import Query
from xsearch.engine import Engine

KEYS = {"image": "image", "audio": "audio", "text": "text_file"}


def _rows(eng, world, records, target, n):
    """(own item's hit, a random other item's hit) per caption, from one full ranking each."""
    rng = random.Random(0)
    pairs = []
    for r in records:
        hits = {h.path: h for h in eng.search([Query("text", r["text"][-1])], to=target, k=n)[target]}
        own = str(world / r[KEYS[target]])
        other = str(world / rng.choice([o for o in records if o is not r])[KEYS[target]])
        pairs.append((hits[own], hits[other]))
    return pairs


def test_own_items_clear_the_gap_and_shuffled_pairs_mostly_do_not(indexed, world, manifest_records):
    held_out = [r for r in manifest_records if r["split"] == "test"][:20]
    assert len(held_out) >= 10
    with Engine(indexed) as eng:
        for target in ("image", "audio", "text"):
            pairs = _rows(eng, world, held_out, target, len(manifest_records))
            own = sum(h.weak is False for h, _ in pairs) / len(pairs)
            shuffled = sum(o.weak is False for _, o in pairs) / len(pairs)
            print(target, "own clears", own, "shuffled clears", shuffled)
            assert own >= 0.9, (target, own)
            assert shuffled <= 0.15, (target, shuffled)
            assert all(h.relevance is not None for h, _ in pairs)


def test_nonsense_says_nothing_here_looks_like_it(cli, indexed):
    r = cli("search", "zzzz", "--to", "text", "-c", indexed, "-k", "5", "--json")
    assert r.code == 0
    hits = json.loads(r.out)["results"]["text"]
    assert hits and all(h["weak"] is True for h in hits)
    r = cli("search", "zzzz", "--to", "text", "-c", indexed, "-k", "5")
    assert 'nothing here looks like "zzzz"' in r.err


def test_a_caption_finds_its_item_marked_strong(cli, indexed, world, manifest_records):
    r0 = [r for r in manifest_records if r["split"] == "test"][0]
    hits = json.loads(cli("search", r0["text"][0], "-c", indexed, "-k", "3", "--json").out)["results"]["image"]
    assert hits[0]["path"] == str(world / r0["image"]) and hits[0]["weak"] is False
