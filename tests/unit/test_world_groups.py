"""The world's attributes, held-out pairs and split assignment."""

from __future__ import annotations

import collections

import pytest

from xsearch.core.errors import UsageError
from xsearch.world import (
    ATTRIBUTES,
    BACKGROUNDS,
    COLOURS,
    COUNTS,
    HELD_OUT,
    POSITIONS,
    SEEN_PAIRS,
    SHAPES,
    SIZES,
    all_attribute_sets,
    sample_groups,
)


def test_attribute_values_are_the_specified_ones():
    assert COLOURS == ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
    assert SHAPES == ("circle", "square", "triangle", "star", "cross")
    assert SIZES == ("small", "large")
    assert COUNTS == (1, 2, 3, 4)
    assert POSITIONS == ("left", "centre", "right")
    assert BACKGROUNDS == ("plain", "striped", "dotted")
    assert list(ATTRIBUTES) == ["colour", "shape", "size", "count", "position", "background"]
    combos = list(all_attribute_sets())
    assert len(combos) == 2880 == len({tuple(c.values()) for c in combos})


def test_held_out_pairs_are_one_shape_per_colour():
    assert HELD_OUT == {(COLOURS[i], SHAPES[i % 5]) for i in range(8)}
    assert sorted(c for c, _ in HELD_OUT) == sorted(COLOURS)
    assert len(SEEN_PAIRS) == 32 and not HELD_OUT & set(SEEN_PAIRS)


@pytest.fixture(scope="module")
def groups():
    return sample_groups(2000, seed=3)


def test_test_split_uses_only_held_out_pairs_and_train_val_never(groups):
    for g in groups:
        pair = (g.attributes["colour"], g.attributes["shape"])
        assert (pair in HELD_OUT) == (g.split == "test"), (g.id, g.split, pair)
    # Every held-out pair shows up in test, every seen pair in train.
    assert {(g.attributes["colour"], g.attributes["shape"]) for g in groups if g.split == "test"} == HELD_OUT
    assert {(g.attributes["colour"], g.attributes["shape"]) for g in groups if g.split == "train"} == set(SEEN_PAIRS)


def test_split_fractions(groups):
    counts = collections.Counter(g.split for g in groups)
    assert abs(counts["test"] / 2000 - 0.15) < 0.01
    assert abs(counts["val"] / 2000 - 0.10) < 0.01
    custom = collections.Counter(g.split for g in sample_groups(500, 1, test_fraction=0.3, val_fraction=0.2))
    assert abs(custom["test"] / 500 - 0.3) < 0.02 and abs(custom["val"] / 500 - 0.2) < 0.02
    assert {g.split for g in sample_groups(50, 1, test_fraction=0.0, val_fraction=0.0)} == {"train"}
    # Small worlds still get every split.
    assert {g.split for g in sample_groups(20, 0)} == {"train", "val", "test"}


def test_every_attribute_value_is_drawn(groups):
    for name, values in ATTRIBUTES.items():
        seen = collections.Counter(g.attributes[name] for g in groups)
        assert set(seen) == set(values), name
        assert min(seen.values()) > 0.5 * len(groups) / len(values), (name, seen)


def test_group_i_depends_only_on_seed_and_i():
    assert sample_groups(50, 7) == sample_groups(200, 7)[:50]
    assert sample_groups(50, 7) != sample_groups(50, 8)
    g = sample_groups(3, 7)[2]
    assert g.id == "g000002" and g.index == 2
    assert g.rng("audio").random() == g.rng("audio").random() != g.rng("image").random()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1},
        {"n": 5, "seed": -2},
        {"n": 5, "test_fraction": 0.8, "val_fraction": 0.3},
        {"n": 5, "val_fraction": -0.1},
    ],
)
def test_bad_arguments_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        sample_groups(**kwargs)
