"""load_image(): mode conversions, orientation, animation, bombs and broken files."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from tests.helpers.media import deny_open, noise_image, png_bytes, png_claiming_size, save_image
from xsearch.core.errors import MediaError
from xsearch.media import load_image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _pixel(image: Image.Image, xy=(0, 0)) -> tuple:
    assert image.mode == "RGB"
    return image.getpixel(xy)


def test_rgb_png_round_trips_exactly(tmp_path: Path):
    original = noise_image((16, 9))
    loaded = load_image(save_image(tmp_path / "x.png", original))
    assert loaded.mode == "RGB" and loaded.size == (16, 9)
    assert np.array_equal(np.asarray(loaded), np.asarray(original))


@pytest.mark.parametrize("fmt, ext", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_exif_orientation_is_applied(tmp_path: Path, fmt, ext):
    # Stored 40 wide x 20 tall: left half red, right half blue. Orientation 6 = "rotate 90° clockwise
    # to display", so the upright image is 20 x 40 with red on top.
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    quality = {"quality": 95} if fmt == "JPEG" else {}
    loaded = load_image(save_image(tmp_path / f"rotated{ext}", stored, format=fmt, exif=exif, **quality))
    assert loaded.size == (20, 40)
    top, bottom = np.asarray(loaded)[5, 10], np.asarray(loaded)[35, 10]
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_palette_image_uses_palette_colours(tmp_path: Path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    loaded = load_image(save_image(tmp_path / "p.png", image))
    assert _pixel(loaded) == (10, 200, 30)


def test_palette_transparency_becomes_white(tmp_path: Path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.putpixel((1, 1), 1)
    loaded = load_image(save_image(tmp_path / "pt.png", image, transparency=0))
    assert _pixel(loaded, (0, 0)) == WHITE
    assert _pixel(loaded, (1, 1)) == GREEN


def test_rgba_is_composited_on_white(tmp_path: Path):
    image = Image.new("RGBA", (3, 1))
    image.putpixel((0, 0), (255, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 255))
    image.putpixel((2, 0), (255, 0, 0, 128))
    loaded = load_image(save_image(tmp_path / "rgba.png", image))
    assert _pixel(loaded, (0, 0)) == WHITE
    assert _pixel(loaded, (1, 0)) == RED
    r, g, b = _pixel(loaded, (2, 0))
    assert r == 255 and 120 <= g <= 135 and g == b


def test_la_is_composited_on_white(tmp_path: Path):
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (0, 0))
    image.putpixel((1, 0), (0, 255))
    loaded = load_image(save_image(tmp_path / "la.png", image))
    assert _pixel(loaded, (0, 0)) == WHITE
    assert _pixel(loaded, (1, 0)) == (0, 0, 0)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path):
    values = np.array([[0, 128 * 257, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    path = save_image(tmp_path / "g16.png", image)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    loaded = np.asarray(load_image(path))
    assert loaded[0, :, 0].tolist() == [0, 128, 255]


def test_32_bit_integer_image(tmp_path: Path):
    sixteen_bit_range = Image.new("I", (3, 1))
    for x, v in enumerate([0, 128 * 257, 65535]):
        sixteen_bit_range.putpixel((x, 0), v)
    loaded = np.asarray(load_image(save_image(tmp_path / "i32.tif", sixteen_bit_range)))
    assert loaded[0, :, 1].tolist() == [0, 128, 255]
    eight_bit_range = Image.new("I", (2, 1))
    eight_bit_range.putpixel((1, 0), 200)
    loaded = np.asarray(load_image(save_image(tmp_path / "i8.tif", eight_bit_range)))
    assert loaded[0, :, 2].tolist() == [0, 200]


def test_float_image_in_unit_range(tmp_path: Path):
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    loaded = np.asarray(load_image(save_image(tmp_path / "f.tif", image)))
    assert loaded[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_becomes_rgb(tmp_path: Path):
    cyan = Image.new("CMYK", (2, 2), (255, 0, 0, 0))
    assert _pixel(load_image(save_image(tmp_path / "cmyk.tif", cyan))) == (0, 255, 255)
    jpeg = load_image(save_image(tmp_path / "cmyk.jpg", cyan, quality=95))
    r, g, b = _pixel(jpeg)
    assert r < 20 and g > 235 and b > 235


def test_one_bit_image(tmp_path: Path):
    image = Image.new("1", (2, 1), 0)
    image.putpixel((1, 0), 1)
    loaded = load_image(save_image(tmp_path / "bw.png", image))
    assert [_pixel(loaded, (0, 0)), _pixel(loaded, (1, 0))] == [(0, 0, 0), WHITE]


def test_animated_gif_gives_first_frame(tmp_path: Path):
    frames = [Image.new("RGB", (8, 8), c) for c in (RED, GREEN, BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 3
    assert _pixel(load_image(path)) == RED


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_animated_webp_gives_first_frame(tmp_path: Path):
    frames = [Image.new("RGB", (8, 8), c) for c in (GREEN, RED)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    with Image.open(path) as check:
        assert check.n_frames == 2
    assert _pixel(load_image(path)) == GREEN


def test_png_content_with_jpg_name_loads(tmp_path: Path):
    path = tmp_path / "liar.jpg"
    path.write_bytes(png_bytes(Image.new("RGB", (3, 3), BLUE)))
    assert _pixel(load_image(path)) == BLUE


# --- hostile input ---


def test_decompression_bomb_guard_on_real_image(tmp_path: Path):
    path = save_image(tmp_path / "big.png", Image.new("RGB", (200, 100)))
    with pytest.raises(MediaError) as err:
        load_image(path, max_pixels=10_000)
    message = str(err.value)
    assert "200x100" in message and "10,000" in message and "decompression bomb" in message
    assert load_image(path, max_pixels=20_000).size == (200, 100)  # at the limit it loads


def test_header_claims_huge_size_file_is_tiny(tmp_path: Path):
    path = tmp_path / "claims_12000.png"
    path.write_bytes(png_claiming_size(12_000, 12_000))  # 144 Mpx: past PIL's warning, under its error
    assert path.stat().st_size < 2_000
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning leaks out
        with pytest.raises(
            MediaError, match=r"12000x12000 = 144,000,000 pixels, over the limit of 64,000,000"
        ):
            load_image(path, max_pixels=64_000_000)
    assert time.perf_counter() - started < 1.0  # refused from the header, nothing decoded


def test_header_beyond_pils_own_bomb_limit(tmp_path: Path):
    path = tmp_path / "claims_30000.png"
    path.write_bytes(png_claiming_size(30_000, 30_000))
    with pytest.raises(MediaError, match="decompression bomb") as err:
        load_image(path, max_pixels=10**12)  # our limit allows it; PIL's DecompressionBombError is caught
    assert "900000000" in str(err.value)


@pytest.mark.parametrize("fmt, ext", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_truncated_image(tmp_path: Path, fmt, ext):
    full = save_image(tmp_path / f"full{ext}", noise_image((128, 96)), format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="^corrupt or truncated image: ") as err:
        load_image(cut)
    assert "\n" not in str(err.value)


def test_random_bytes_with_png_name(tmp_path: Path):
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="^corrupt or truncated image: not a recognised image format$"):
        load_image(path)


def test_png_signature_then_garbage(tmp_path: Path):
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\xff" * 200)
    with pytest.raises(MediaError, match="^corrupt or truncated image"):
        load_image(path)


def test_zero_byte_image(tmp_path: Path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\)$"):
        load_image(path)


def test_unreadable_image(tmp_path: Path, monkeypatch):
    path = save_image(tmp_path / "locked.png", noise_image((4, 4)))
    deny_open(monkeypatch, path)
    with pytest.raises(MediaError, match="^permission denied$"):
        load_image(path)


def test_missing_image(tmp_path: Path):
    with pytest.raises(MediaError, match="^file not found$"):
        load_image(tmp_path / "gone.png")
