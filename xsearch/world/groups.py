"""Item groups: one set of attributes, its split, and the seeds its image, sound and captions are drawn from.

Group ``i`` depends on ``(seed, i)`` only, so ``sample_groups(100, s)[:50] == sample_groups(50, s)`` and every
renderer is reproducible byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.world.attributes import BACKGROUNDS, COUNTS, HELD_OUT_PAIRS, POSITIONS, SEEN_PAIRS, SIZES

SPLITS: tuple[str, ...] = ("train", "val", "test")

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # step of the low-discrepancy sequence that assigns splits
_SPLIT_STREAM = 0x5B117  # tags the seed's split-offset stream apart from any group index


@dataclass(frozen=True)
class Group:
    """One generated item: its attributes, split, and the seeds of its three renderings."""

    id: str
    index: int
    split: str
    attributes: dict = field(hash=False)
    image_seed: int
    audio_seed: int
    text_seed: int

    def rng(self, modality: str) -> np.random.Generator:
        """A fresh generator for one rendering ("image", "audio" or "text"): same group, same draws."""
        seed = {"image": self.image_seed, "audio": self.audio_seed, "text": self.text_seed}[modality]
        return np.random.default_rng(seed)


def group_id(index: int) -> str:
    """The id of group ``index``: ``g000123``."""
    return f"g{index:06d}"


def sample_groups(n: int, seed: int = 0, *, test_fraction: float = 0.15, val_fraction: float = 0.1) -> list[Group]:
    """Draw ``n`` groups. Test groups use only held-out (colour, shape) pairs; train and val never do.

    Splits follow a low-discrepancy sequence in ``i`` (offset by ``seed``), so every prefix of the list meets the
    fractions to within about one group; the attributes are uniform given the split.
    """
    if n < 0:
        raise UsageError(f"the number of groups must be 0 or more, not {n}.")
    if seed < 0:
        raise UsageError(f"the seed must be 0 or more, not {seed}.")
    if not (0.0 <= test_fraction <= 1.0 and 0.0 <= val_fraction <= 1.0 and test_fraction + val_fraction <= 1.0):
        raise UsageError(
            f"split fractions must be between 0 and 1 and sum to at most 1 (test {test_fraction}, val {val_fraction})."
        )
    offset = float(np.random.default_rng([seed, _SPLIT_STREAM]).random())
    return [_sample_group(i, seed, offset, test_fraction, val_fraction) for i in range(n)]


def _sample_group(i: int, seed: int, offset: float, test_fraction: float, val_fraction: float) -> Group:
    u = (offset + i * _GOLDEN) % 1.0
    split = "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"
    rng = np.random.default_rng([seed, i])
    pairs = HELD_OUT_PAIRS if split == "test" else SEEN_PAIRS
    colour, shape = pairs[rng.integers(len(pairs))]
    attributes = {
        "colour": colour,
        "shape": shape,
        "size": SIZES[rng.integers(len(SIZES))],
        "count": int(COUNTS[rng.integers(len(COUNTS))]),
        "position": POSITIONS[rng.integers(len(POSITIONS))],
        "background": BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
    }
    image_seed, audio_seed, text_seed = (int(s) for s in rng.integers(0, 2**63, size=3))
    return Group(group_id(i), i, split, attributes, image_seed, audio_seed, text_seed)
