"""Pictures: every attribute can be read back from the pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.helpers.world import classify_shape, components, mean_object_rgb, nearest_hue_name, object_mask
from xsearch.world import render_image, sample_groups

# What each colour name means to a viewer (independent of the renderer's own table): typical RGB.
NAMED_RGB = {
    "red": (230, 30, 30), "orange": (245, 140, 20), "yellow": (240, 225, 30), "green": (40, 180, 50),
    "cyan": (30, 210, 225), "blue": (40, 90, 230), "purple": (150, 60, 200), "pink": (255, 140, 200),
}


@pytest.fixture(scope="module")
def rendered():
    return [(g, render_image(g)) for g in sample_groups(150, seed=5)]


def test_format_and_determinism(rendered):
    g, image = rendered[0]
    assert image.mode == "RGB" and image.size == (128, 128)

    def png(im):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()

    assert png(render_image(g)) == png(image)
    assert png(render_image(rendered[1][0])) != png(image)


def test_background_is_neutral_grey(rendered):
    for g, image in rendered:
        rgb = np.asarray(image)
        background = rgb[~object_mask(image)]
        assert (background.max(axis=1) == background.min(axis=1)).all(), g.attributes


def test_background_texture(rendered):
    for g, image in rendered:
        grey = np.asarray(image)[:, :, 0].astype(float)
        bg = ~object_mask(image)
        levels = np.unique(grey[bg])
        if g.attributes["background"] == "plain":
            assert len(levels) == 1, g.attributes
        else:
            assert np.ptp(levels) >= 30, g.attributes
        if g.attributes["background"] == "striped":
            # Horizontal stripes: each image row is one grey level wherever the background shows.
            assert all(len(np.unique(grey[y][bg[y]])) == 1 for y in range(128) if bg[y].any())
        if g.attributes["background"] == "dotted":
            assert (grey[bg] < grey[bg].max()).mean() < 0.3  # dots are sparse on the lighter ground


def test_object_colour(rendered):
    for g, image in rendered:
        assert nearest_hue_name(mean_object_rgb(image), NAMED_RGB) == g.attributes["colour"], g.attributes


def test_objects_count_shape_size_position(rendered):
    for g, image in rendered:
        a = g.attributes
        mask = object_mask(image)
        # Fully inside the picture: nothing touches the border.
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()), a
        blobs = components(mask)
        assert len(blobs) == a["count"], a
        third = ("left", "centre", "right").index(a["position"])
        assert third * 128 / 3 < np.nonzero(mask)[1].mean() < (third + 1) * 128 / 3, a
        for blob in blobs:
            assert classify_shape(blob) == a["shape"], a
            height = np.ptp(blob[:, 0]) + 1
            assert (height < 22) == (a["size"] == "small"), (a, height)
