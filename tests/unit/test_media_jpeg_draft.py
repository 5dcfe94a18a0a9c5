"""Large JPEGs are decoded at reduced scale when the model only needs a small image (PIL draft mode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from xsearch.media.image import decode_image, load_image, shrink_to_short_side
from xsearch.media.types import DecodeOptions, MediaFile


def _photo(path: Path, size=(1600, 1200), orientation: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    pixels = np.stack([(x / 7) % 256, (y / 5) % 256, ((x + y) / 9) % 256], -1) + rng.normal(0, 8, (*size[::-1], 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=90, exif=exif)
    return path


def test_draft_decodes_smaller_keeps_the_short_side_and_the_pixels(tmp_path):
    path = _photo(tmp_path / "p.jpg")
    full = load_image(path)
    size: dict = {}
    small = load_image(path, min_short_side=100, full_size=size)
    assert full.size == (1600, 1200) and size == {"width": 1600, "height": 1200}
    assert min(small.size) >= 100 and small.size[0] <= 800  # decoded at 1/2 scale or less
    a = np.asarray(shrink_to_short_side(full, 100), dtype=np.float32)
    b = np.asarray(shrink_to_short_side(small, 100), dtype=np.float32)
    assert a.shape == b.shape and np.abs(a - b).mean() < 4  # what the model sees barely changes


def test_decoder_reports_the_full_upright_size(tmp_path):
    path = _photo(tmp_path / "rotated.jpg", orientation=6)  # stored landscape, shown portrait
    file = MediaFile(path=path, modality="image", size=path.stat().st_size, mtime_ns=0)
    (seg,) = decode_image(file, DecodeOptions(image_short_side=64))
    assert seg.info == {"width": 1200, "height": 1600}
    assert min(seg.data.size) == 64 and seg.data.size[1] > seg.data.size[0]  # upright: portrait
    png = tmp_path / "p.png"
    Image.open(path).save(png)  # not a JPEG: decoded in full, shrunk after
    (seg,) = decode_image(MediaFile(path=png, modality="image", size=png.stat().st_size, mtime_ns=0),
                          DecodeOptions(image_short_side=64))
    assert min(seg.data.size) == 64 and seg.info == {"width": 1600, "height": 1200}
