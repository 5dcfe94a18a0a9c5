"""Draw a group as a 128x128 RGB picture: grey background texture, ``count`` coloured shapes in one third.

Backgrounds use neutral greys only, so every saturated pixel belongs to an object and object colours stay
distinct. Objects sit in a column centred on the third named by ``position``, at random non-overlapping heights.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from xsearch.world.groups import Group

IMAGE_SIZE = 128

#: Base colour of each colour name as (hue in degrees, saturation, value).
COLOUR_HSV: dict[str, tuple[float, float, float]] = {
    "red": (0.0, 0.85, 0.90),
    "orange": (28.0, 0.90, 0.97),
    "yellow": (55.0, 0.85, 0.95),
    "green": (125.0, 0.75, 0.72),
    "cyan": (185.0, 0.80, 0.88),
    "blue": (225.0, 0.80, 0.90),
    "purple": (275.0, 0.65, 0.78),
    "pink": (325.0, 0.45, 1.00),
}

SMALL_RADIUS = (7.0, 9.0)
LARGE_RADIUS = (14.0, 16.0)
_MIN_GAP = 3.0  # px between stacked objects and to the image border
_X_JITTER = 3.0
_HUE_JITTER, _SAT_JITTER, _VAL_JITTER = 5.0, 0.05, 0.07


def render_image(group: Group) -> Image.Image:
    """The group's picture (RGB, 128x128), identical for identical groups."""
    rng = group.rng("image")
    a = group.attributes
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE))
    draw = ImageDraw.Draw(image)
    _draw_background(draw, a["background"], rng)
    fill = _jittered_rgb(a["colour"], rng)
    for cx, cy, r in _layout(a["count"], a["size"], a["position"], rng):
        _draw_shape(draw, a["shape"], cx, cy, r, fill)
    return image


def _grey(level: float) -> tuple[int, int, int]:
    g = round(min(max(level, 0.0), 255.0))
    return (g, g, g)


def _draw_background(draw: ImageDraw.ImageDraw, background: str, rng: np.random.Generator) -> None:
    s = IMAGE_SIZE
    if background == "plain":
        draw.rectangle((0, 0, s, s), fill=_grey(rng.uniform(165, 225)))
    elif background == "striped":
        light = rng.uniform(185, 230)
        dark = light - rng.uniform(35, 55)
        period = int(rng.integers(14, 19))  # ~8 px stripes
        phase = int(rng.integers(period))
        draw.rectangle((0, 0, s, s), fill=_grey(light))
        for y in range(-period + phase, s, period):
            draw.rectangle((0, y, s, y + period // 2 - 1), fill=_grey(dark))
    elif background == "dotted":
        light = rng.uniform(190, 232)
        dark = light - rng.uniform(40, 60)
        spacing = rng.uniform(12, 14)
        radius = rng.uniform(2.6, 3.4)
        ox, oy = rng.uniform(0, spacing, size=2)
        draw.rectangle((0, 0, s, s), fill=_grey(light))
        for row, y in enumerate(np.arange(oy - spacing, s + spacing, spacing)):
            shift = spacing / 2 if row % 2 else 0.0  # staggered rows read as polka dots
            for x in np.arange(ox - spacing + shift, s + spacing, spacing):
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_grey(dark))
    else:
        raise ValueError(f"unknown background {background!r}")


def _jittered_rgb(colour: str, rng: np.random.Generator) -> tuple[int, int, int]:
    h, s, v = COLOUR_HSV[colour]
    h = (h + rng.uniform(-_HUE_JITTER, _HUE_JITTER)) % 360.0
    s = min(max(s + rng.uniform(-_SAT_JITTER, _SAT_JITTER), 0.0), 1.0)
    v = min(max(v + rng.uniform(-_VAL_JITTER, _VAL_JITTER), 0.0), 1.0)
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(h / 360.0, s, v))


def _layout(count: int, size: str, position: str, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Centres and radius of the objects: one column in the position's third, gaps shared out at random."""
    lo, hi = SMALL_RADIUS if size == "small" else LARGE_RADIUS
    # Four large objects must still fit one above the other with gaps: cap the radius so they do.
    r = min(rng.uniform(lo, hi), (IMAGE_SIZE - (count + 1) * _MIN_GAP) / (2 * count))
    third = IMAGE_SIZE / 3.0
    column_x = third * (0.5 + ("left", "centre", "right").index(position))
    slack = IMAGE_SIZE - count * 2 * r - (count + 1) * _MIN_GAP
    gaps = _MIN_GAP + slack * rng.dirichlet(np.ones(count + 1))
    objects, top = [], 0.0
    for k in range(count):
        top += gaps[k]
        cx = column_x + rng.uniform(-_X_JITTER, _X_JITTER)
        objects.append((cx, top + r, r))
        top += 2 * r
    return objects


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        h = r * 0.85
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=fill)
    elif shape == "triangle":
        # Near-equilateral, pointing up, filling the object's box (apex at the top, base at the bottom).
        half_base = r * 1.1
        draw.polygon([(cx, cy - r), (cx + half_base, cy + r), (cx - half_base, cy + r)], fill=fill)
    elif shape == "star":
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)
    elif shape == "cross":
        arm = r * 0.34
        draw.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=fill)
        draw.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")
