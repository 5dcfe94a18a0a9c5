"""Plain data types that flow from discovery through decoding to the encoders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE, AUDIO, TEXT = "image", "audio", "text"
MODALITIES: tuple[str, ...] = (IMAGE, AUDIO, TEXT)


@dataclass(frozen=True)
class MediaFile:
    """A file found by discovery, classified into one modality."""

    path: Path
    modality: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Skipped:
    """A file that was not processed, with a one-line reason for the report."""

    path: Path
    reason: str


@dataclass
class Segment:
    """One embeddable unit decoded from a file.

    - image: ``data`` is an RGB ``PIL.Image``; ``offset`` is 0.
    - audio: ``data`` is a mono float32 numpy waveform at the requested sample rate, one window long at
      most; ``offset`` is the window start in seconds.
    - text: ``data`` is a passage string; ``offset`` is the passage's index within the file.
    """

    file: MediaFile
    data: Any
    offset: float = 0.0
    info: dict = field(default_factory=dict)  # width/height, duration (s), sample_rate, encoding ...

    @property
    def modality(self) -> str:
        return self.file.modality


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: what the encoder expects, and the guards against hostile input."""

    sample_rate: int = 16000
    audio_window_s: float = 2.0
    max_audio_s: float = 600.0  # longer audio is cut here (and the cut is reported in Segment.info)
    max_image_pixels: int = 64_000_000  # above this, an image is treated as a decompression bomb
    # > 0: shrink images in the decode worker so the shorter side is this many pixels (bicubic, exactly as
    # torchvision's Resize(int) does), so the encoder's own transform has little left to do in the main process
    image_short_side: int = 0
    text_passage_chars: int = 1000
    max_text_chars: int = 1_000_000
