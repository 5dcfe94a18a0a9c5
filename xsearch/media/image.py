"""Decode one image file into an RGB PIL image, guarding against bombs and corrupt data."""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xsearch.core.errors import MediaError
from xsearch.media._io import one_line, open_binary
from xsearch.media.types import DecodeOptions, MediaFile, Segment

_WHITE = (255, 255, 255)


def load_image(path: str | os.PathLike, max_pixels: int = 64_000_000, *, min_short_side: int = 0,
               full_size: dict | None = None) -> Image.Image:
    """Load the first frame of an image as RGB, upright per its EXIF orientation.

    Transparency is composited on white; 16-bit, float, CMYK, palette and 1-bit images are converted.
    An image whose header claims more than ``max_pixels`` pixels is refused before any decoding.
    Every failure is a MediaError with a one-line reason.

    ``min_short_side`` > 0: the caller only needs the shorter side this large, so a JPEG is decoded at a
    reduced scale (1/2, 1/4 or 1/8, PIL's ``draft``: the IDCT skips the high frequencies) that keeps the shorter
    side at least that large; a 4000×3000 photo for a 224-pixel model decodes at 500×375, several times faster.
    ``full_size`` (a dict) receives the image's upright "width" and "height" as stored, before any such scaling,
    and "animated": True when the file is an image sequence (an animated GIF, APNG or WebP; a multi-page TIFF).
    """
    image, (width, height), animated = _load(path, max_pixels, min_short_side)
    if full_size is not None:
        full_size.update(width=width, height=height)
        if animated:
            full_size["animated"] = True
    return image


_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _load(path, max_pixels: int, min_short_side: int) -> tuple[Image.Image, tuple[int, int], bool]:
    with open_binary(path) as handle:
        try:
            with warnings.catch_warnings():
                # Our own max_pixels check below replaces PIL's warning; PIL's hard error still applies.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(handle)
        except Image.DecompressionBombError as exc:
            raise MediaError(f"image refused as a possible decompression bomb: {one_line(exc)}") from exc
        except UnidentifiedImageError as exc:
            raise MediaError("corrupt or truncated image: not a recognised image format") from exc
        except Exception as exc:
            raise MediaError(f"corrupt or truncated image: {_describe(exc)}") from exc
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise MediaError(
                    f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} (possible decompression bomb)"
                )
            try:
                full = (width, height)
                with contextlib.suppress(Exception):  # a header without EXIF, or a broken one: as stored
                    if image.getexif().get(0x0112) in _TRANSPOSED:
                        full = (height, width)
                if min_short_side > 0 and image.format == "JPEG" and min(width, height) >= 2 * min_short_side:
                    image.draft("RGB", (min_short_side, min_short_side))  # both sides stay >= min_short_side
                image.load()  # the first frame of an animation is the current frame after open
                rgb = _to_rgb(_upright(image))
                animated = False
                with contextlib.suppress(Exception):  # is_animated looks for a second frame, no further
                    animated = bool(getattr(image, "is_animated", False))
                return rgb, full, animated
            except MediaError:
                raise
            except Exception as exc:
                raise MediaError(f"corrupt or truncated image: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    message = one_line(exc)
    return message if message else type(exc).__name__


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        # A malformed EXIF block is common in otherwise good photos; keep the pixels as stored.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        return _on_white(image.convert("RGBA"))
    if mode.startswith("I;16"):
        return _gray_to_rgb(np.asarray(image).astype(np.float32) / 257.0)
    if mode == "I":
        values = np.asarray(image).astype(np.float64)
        return _gray_to_rgb(_scale_integer(values))
    if mode == "F":
        return _gray_to_rgb(_scale_float(np.asarray(image).astype(np.float64)))
    try:
        return image.convert("RGB")  # P, L, 1, CMYK, YCbCr, ...
    except ValueError as exc:
        raise MediaError(f"unsupported image mode {mode}") from exc


def _on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, _WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _scale_integer(values: np.ndarray) -> np.ndarray:
    """32-bit integer pixels to 0..255: 8-bit data kept, 16-bit data scaled, anything wider stretched."""
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    if low >= 0 and high <= 255:
        return values
    if low >= 0 and high <= 65535:
        return values / 257.0
    return _stretch(values)


def _scale_float(values: np.ndarray) -> np.ndarray:
    """Float pixels to 0..255: [0, 1] data scaled, [0, 255] kept, anything else stretched."""
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if values.size == 0:
        return values
    low, high = values.min(), values.max()
    if low >= 0 and high <= 1:
        return values * 255.0
    if low >= 0 and high <= 255:
        return values
    return _stretch(values)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = values.min(), values.max()
    return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def shrink_to_short_side(image, short_side: int):
    """Downscale so the shorter side is ``short_side`` (bicubic; sizes computed as torchvision's Resize does).

    Images already that small are returned unchanged.
    """
    from PIL import Image

    w, h = image.size
    if short_side <= 0 or min(w, h) <= short_side:
        return image
    size = (int(short_side * w / h), short_side) if w > h else (short_side, int(short_side * h / w))
    return image.resize(size, Image.BICUBIC)


def decode_image(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    """The image modality's decoder: one Segment, an RGB PIL image (shrunk early when ``opts`` asks: a large
    JPEG is then decoded at reduced scale), info {width, height} of the file's image."""
    info: dict = {}
    image = load_image(file.path, opts.max_image_pixels, min_short_side=opts.image_short_side, full_size=info)
    animated = info.get("animated", False)
    info = {"width": info.get("width", image.width), "height": info.get("height", image.height)}
    if animated:  # said in the index report, as a video's missing sound track is
        info["note"] = "an animated image (an image sequence); only its first frame is indexed"
    return [Segment(file=file, data=shrink_to_short_side(image, opts.image_short_side), offset=0.0, info=info)]
