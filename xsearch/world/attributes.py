"""The world's attributes: the values every item is described by, and the held-out (colour, shape) pairs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

COLOURS: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
SIZES: tuple[str, ...] = ("small", "large")
COUNTS: tuple[int, ...] = (1, 2, 3, 4)
POSITIONS: tuple[str, ...] = ("left", "centre", "right")
BACKGROUNDS: tuple[str, ...] = ("plain", "striped", "dotted")

#: Attribute name -> its values, in the order used everywhere (records, vocabulary, captions).
ATTRIBUTES: dict[str, tuple] = {
    "colour": COLOURS,
    "shape": SHAPES,
    "size": SIZES,
    "count": COUNTS,
    "position": POSITIONS,
    "background": BACKGROUNDS,
}

#: (colour, shape) pairs that only the test split contains: one shape per colour, cycling through shapes.
HELD_OUT: frozenset[tuple[str, str]] = frozenset((COLOURS[i], SHAPES[i % len(SHAPES)]) for i in range(len(COLOURS)))

#: The (colour, shape) pairs train and val draw from, and the ones test draws from, in a fixed order.
SEEN_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT
)
HELD_OUT_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (c, s) for c in COLOURS for s in SHAPES if (c, s) in HELD_OUT
)


def all_attribute_sets() -> Iterator[dict]:
    """Every attribute combination (8*5*2*4*3*3 = 2880) as an attribute dict, in a fixed order."""
    names = list(ATTRIBUTES)
    for values in itertools.product(*ATTRIBUTES.values()):
        yield dict(zip(names, values))
