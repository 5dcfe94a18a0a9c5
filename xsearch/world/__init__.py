"""The generated tri-modal world: paired images, captions and sounds drawn from six attributes.

Deterministic: group ``i`` depends only on ``(seed, i)``. Used to train the builtin model, as the demo
collection and as test data. See ``make_world`` for the on-disk layout.
"""

from xsearch.world.attributes import (
    ATTRIBUTES,
    BACKGROUNDS,
    COLOURS,
    COUNTS,
    HELD_OUT,
    HELD_OUT_PAIRS,
    POSITIONS,
    SEEN_PAIRS,
    SHAPES,
    SIZES,
    all_attribute_sets,
)
from xsearch.world.generate import MANIFEST_NAME, WorldError, is_world, make_world, world_info
from xsearch.world.groups import SPLITS, Group, sample_groups
from xsearch.world.image import render_image
from xsearch.world.sound import SAMPLE_RATE, colour_pitch, render_audio, write_audio
from xsearch.world.text import (
    attribute_phrases,
    canonical_caption,
    caption_attributes,
    captions,
    vocabulary,
)

__all__ = [
    "ATTRIBUTES", "BACKGROUNDS", "COLOURS", "COUNTS", "HELD_OUT", "HELD_OUT_PAIRS", "MANIFEST_NAME", "POSITIONS",
    "SAMPLE_RATE", "SEEN_PAIRS", "SHAPES", "SIZES", "SPLITS", "Group", "WorldError", "all_attribute_sets",
    "attribute_phrases", "canonical_caption", "caption_attributes", "captions", "colour_pitch", "is_world",
    "make_world", "render_audio", "render_image", "sample_groups", "vocabulary", "world_info", "write_audio",
]
