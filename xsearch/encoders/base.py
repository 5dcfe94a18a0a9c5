"""The Encoder protocol: every item and every query becomes a vector through one of these."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from xsearch.media import modalities as _modalities

DEFAULT_SPACE = "shared"


@runtime_checkable
class Encoder(Protocol):
    """A model that embeds some of image / audio / text into one or more embedding spaces.

    Single-space models (builtin, openclip, clap) have one space, ``DEFAULT_SPACE``. A bridged pair
    (open_clip + CLAP) has two; ``index_space(modality)`` says where items of a modality are indexed,
    and a query is embedded into the space of the target modality's index. ``embed`` returns an L2-normalised
    float32 array of shape ``[n, spaces[space]]``.
    """

    spec: str  # the registry spec this encoder was built from, e.g. "builtin"
    model_id: str  # spec + weights hash + dims: what a collection records
    modalities: tuple[str, ...]  # names registered in xsearch.media.modalities, e.g. ("image", "text")
    spaces: dict[str, int]  # space name -> dim
    sample_rate: int  # audio sample rate the audio tower expects (0 if no audio)
    audio_window_s: float  # audio is embedded in windows of this length
    device: str
    # Optional: ``image_short_side`` (int) — the encoder's transform starts with a bicubic Resize of the shorter
    # side to this size, so decoders may shrink images to it early (in worker processes) with identical results.

    def index_space(self, modality: str) -> str: ...

    def embed(self, modality: str, batch: Sequence, space: str | None = None) -> np.ndarray:
        """Embed a batch of decoded segments of ``modality`` (PIL images, waveforms, strings) into ``space``
        (default: the modality's index space). The one entry point; modality is data."""
        ...

    def describe(self) -> dict: ...


# Tracks built on another modality's tower (a video's picture windows, frames pooled in the image space, and its
# sound track, audio windows) are declared in the modality registry (xsearch.media.modalities: Track.embed_as).
# Any encoder with the parent tower embeds them; they are indexed in its space.


def tracks(encoder) -> tuple[str, ...]:
    """Everything ``encoder`` can embed and index: its modalities plus the derived tracks their towers carry."""
    own = tuple(encoder.modalities)
    derived = _modalities.derived_tracks()
    return own + tuple(t for t, parent in derived.items() if parent in own and t not in own)


def parent_modality(track: str) -> str:
    """The modality whose tower embeds ``track`` (itself for image / audio / text)."""
    return _modalities.embed_as(track)


def pool_clips(vectors: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """One unit vector per clip: the mean of its frames' vectors (ImageBind pools a clip's frames the same way)."""
    out, start = [], 0
    for n in sizes:
        out.append(vectors[start:start + n].mean(0))
        start += n
    return l2_normalize(np.stack(out)) if out else np.zeros((0, vectors.shape[1]), np.float32)


class ModalityDispatch:
    """``embed(modality, batch, space)`` dispatched through ``EMBEDDERS``: {modality: name of a method(batch, space)}.

    Only the modalities in ``self.modalities`` dispatch. An encoder gains a modality by listing it there and adding
    one ``EMBEDDERS`` entry (e.g. ``EMBEDDERS = {**ModalityDispatch.EMBEDDERS, "video": "_embed_video"}``); the
    per-modality methods are private, so callers only ever call ``embed``.
    """

    EMBEDDERS: dict[str, str] = {"image": "_embed_images", "audio": "_embed_audio", "text": "_embed_text"}

    spec: str
    modalities: tuple[str, ...]

    def embedders(self) -> dict:
        """{modality: bound method(batch, space=None)} for every modality this encoder embeds."""
        table = {m: getattr(self, self.EMBEDDERS[m], None) for m in self.modalities if m in self.EMBEDDERS}
        return {m: f for m, f in table.items() if f is not None}

    def embed(self, modality: str, batch: Sequence, space: str | None = None) -> np.ndarray:
        if modality not in self.EMBEDDERS and modality in _modalities.derived_tracks():
            return self._embed_derived(modality, batch, space)
        fn = self.embedders().get(modality)
        if fn is None:
            raise unsupported_modality(self, modality)
        return fn(batch, space=space)

    def _embed_derived(self, track: str, batch: Sequence, space: str | None) -> np.ndarray:
        declared = _modalities.track(track)
        parent = declared.embed_as
        space = space or self.index_space(track)
        if declared.pooled:  # each item is a clip: a list of frames, pooled into one vector
            clips = [list(clip) for clip in batch]
            if not clips:
                return self.embed(parent, [], space=space)
            if any(not clip for clip in clips):
                raise unsupported_modality(self, "an empty video clip")
            frames = [frame for clip in clips for frame in clip]
            return pool_clips(self.embed(parent, frames, space=space), [len(c) for c in clips])
        return self.embed(parent, batch, space=space)


class TowersByModality:
    """Mixin for encoders whose towers all run through one ``_embed(modality, batch, space)``: the per-modality
    methods that :class:`ModalityDispatch` dispatches to, written once (builtin on torch and on ONNX Runtime)."""

    def _embed_images(self, images: Sequence, space: str | None = None) -> np.ndarray:
        return self._embed("image", images, space)

    def _embed_audio(self, waves: Sequence[np.ndarray], space: str | None = None) -> np.ndarray:
        return self._embed("audio", waves, space)

    def _embed_text(self, texts: Sequence[str], space: str | None = None) -> np.ndarray:
        return self._embed("text", texts, space)


class SingleSpace(ModalityDispatch):
    """Mixin for encoders with one embedding space: every modality is indexed in ``DEFAULT_SPACE``."""

    spec: str
    modalities: tuple[str, ...]

    def index_space(self, modality: str) -> str:
        if parent_modality(modality) not in self.modalities:
            raise unsupported_modality(self, modality)
        return DEFAULT_SPACE

    def _check_space(self, space: str | None) -> None:
        from xsearch.core.errors import ModelError

        if space not in (None, DEFAULT_SPACE):
            raise ModelError(f"{self.spec} has one embedding space, not {space!r}.")


def unsupported_modality(encoder, modality: str):
    """The UsageError for a modality an encoder has no tower for (code ``model.modality_unsupported``)."""
    from xsearch.core.errors import UsageError

    return UsageError(f"model {encoder.spec} cannot embed {modality} (it embeds {', '.join(encoder.modalities)}).",
                      code="model.modality_unsupported", modality=modality, model=encoder.spec)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation to float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


def weights_digest(paths: Sequence[Path | str], n: int = 12) -> str:
    """A short content hash of checkpoint files, for ``model_id``."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:n]


def pick_device(requested: str | None = None) -> str:
    """``cuda`` when available (or asked for), else ``cpu``. ``requested`` may be 'cpu', 'cuda', 'cuda:1', 'auto'."""
    import torch

    from xsearch.core.errors import ModelError

    if requested in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {requested} was asked for, but torch sees no CUDA GPU.", code="model.no_cuda",
                         device=requested)
    if requested != "cpu" and not requested.startswith("cuda"):
        raise ModelError(f"unknown device {requested!r}; use cpu, cuda, cuda:N or auto.", code="model.bad_device",
                         device=requested)
    return requested
