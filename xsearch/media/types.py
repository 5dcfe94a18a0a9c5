"""Plain data types that flow from discovery through decoding to the encoders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xsearch.media.modalities import names as _registered_names

IMAGE, AUDIO, TEXT = "image", "audio", "text"

if TYPE_CHECKING:
    MODALITIES: tuple[str, ...]


def __getattr__(name: str):
    # ``MODALITIES``: the registered modality names, read when asked for (image, audio, text built in; a
    # modality registered later is in it from then on).
    if name == "MODALITIES":
        return _registered_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    """One embeddable unit decoded from a file (what ``offset`` counts is its modality's ``offset_unit``).

    - image: ``data`` is an RGB ``PIL.Image``; ``offset`` is 0.
    - audio: ``data`` is a mono float32 numpy waveform at the requested sample rate, one window long at
      most; ``offset`` is the window start in seconds.
    - text: ``data`` is a passage string; ``offset`` is the passage's index within the file.
    """

    file: MediaFile
    data: Any
    offset: float = 0.0
    info: dict = field(default_factory=dict)  # width/height, duration (s), sample_rate, encoding ...
    track: str | None = None  # the index it goes to when not its file's modality (a video's "soundtrack")

    @property
    def modality(self) -> str:
        return self.file.modality


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: what the encoder expects, and the guards against hostile input."""

    sample_rate: int = 16000
    audio_window_s: float = 2.0
    audio_hop_s: float | None = None  # start a window every hop_s seconds (None: windows do not overlap)
    max_audio_s: float = 600.0  # longer audio is cut here (and the cut is reported in Segment.info)
    max_image_pixels: int = 64_000_000  # above this, an image is treated as a decompression bomb
    # > 0: shrink images in the decode worker so the shorter side is this many pixels (bicubic, exactly as
    # torchvision's Resize(int) does), so the encoder's own transform has little left to do in the main process
    image_short_side: int = 0
    text_passage_chars: int = 1000
    max_text_chars: int = 1_000_000
    video_fps: float = 1.0  # frames sampled per second of video, pooled per window in the image space
    max_video_s: float = 1800.0  # longer video is cut here (said in the report)
    text_tracks: tuple[str, ...] = ()  # opt-in text tracks to read for the keyword index ("ocr": `index --ocr`)
