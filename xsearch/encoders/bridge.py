"""Join an image+text encoder and an audio+text encoder through text, with no paired image-audio data.

Two towers that each speak text (CLIP: image+text, CLAP: audio+text) are joined the C-MCR / ImageBind way:
text is the bridge. ``BridgedEncoder`` has two spaces, ``"clip"`` (the vision encoder's) and ``"clap"`` (the
audio encoder's). Images and texts are indexed in ``clip``, audio in ``clap``; a query is embedded into the
space of the index it searches:

- text → audio uses the CLAP text tower directly (``embed("text", texts, space="clap")``);
- image → audio translates the CLIP image vector into CLAP space through a vocabulary, and audio → image
  the other way round (training-free);
- with a trained ``bind`` head (``ProjectionHead``, CLAP audio → CLIP), audio is indexed straight in the
  ``clip`` space instead, next to images and texts.

The translation: a shipped list of short sound texts is embedded once by both text towers (cached on disk,
keyed by both ``model_id``s and the vocabulary's hash). A CLIP vector's cosine similarities to the CLIP text
embeddings pick its ``top_m`` nearest entries; ``softmax(sim / temperature)`` over them weights the *same*
entries' CLAP text embeddings; the weighted sum, renormalised, is the CLAP-space vector (and symmetrically
CLAP → CLIP).

Knobs:
- ``vocab``: the texts both towers embed. Shipped: ``vocab/sound_events.txt`` (AudioSet ontology labels and
  short captions); your own with the spec suffix ``+bridge:<file>`` (one text per line, ``#`` comments). A
  vocabulary that covers the sounds and scenes of your collection translates best.
- ``top_m`` (16): how many nearest entries mix into one translated vector; 1 = nearest-neighbour lookup.
- ``temperature`` (0.05): sharpness of the mix; → 0 is nearest-neighbour lookup, large is the plain mean of
  the ``top_m`` entries.

These knobs change only how queries cross spaces, never the stored vectors, so they are not part of
``model_id``; a bind head is (it decides where audio is indexed). Nothing here is specific to open_clip or
CLAP: any two encoders with those modalities can be joined.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xsearch.core.errors import ModelError
from xsearch.encoders.base import Encoder, ModalityDispatch, l2_normalize, parent_modality, unsupported_modality

if TYPE_CHECKING:
    from xsearch.encoders.projection import ProjectionHead
    from xsearch.encoders.specs import ModelSpec

CLIP_SPACE = "clip"
CLAP_SPACE = "clap"
DEFAULT_TOP_M = 16
DEFAULT_TEMPERATURE = 0.05
_CACHE_VERSION = 1
_VOCAB_CHUNK = 256  # vocabulary entries per text-tower call (progress granularity)

log = logging.getLogger(__name__)


def default_vocab_path() -> Path:
    """The shipped vocabulary: AudioSet ontology sound-event labels and short captions."""
    from importlib import resources

    return Path(str(resources.files("xsearch.encoders") / "vocab" / "sound_events.txt"))


def load_vocab(path: Path | str | None = None) -> list[str]:
    """Vocabulary entries of a text file (default: the shipped one): one per line, '#' comments, no repeats."""
    p = Path(path).expanduser() if path else default_vocab_path()
    if not p.is_file():
        raise ModelError(f"vocabulary file {p} does not exist.")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read vocabulary file {p} as UTF-8 text ({type(e).__name__}).") from None
    entries = [line.strip() for line in lines]
    vocab = list(dict.fromkeys(e for e in entries if e and not e.startswith("#")))
    if not vocab:
        raise ModelError(f"vocabulary file {p} has no entries (one text per line; lines starting with # are comments).")
    return vocab


def vocab_hash(vocab: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(vocab).encode("utf-8")).hexdigest()[:16]


def translate(x: np.ndarray, source: np.ndarray, target: np.ndarray, top_m: int, temperature: float,
              chunk: int = 1024) -> np.ndarray:
    """Rows of ``x`` (in ``source``'s space) → unit rows in ``target``'s space via the shared vocabulary.

    ``source`` [V, d_in] and ``target`` [V, d_out] are the same V vocabulary entries embedded in each space.
    Each row keeps its ``top_m`` most similar entries, weights them by ``softmax(sim / temperature)``
    (``temperature == 0``: all weight on the most similar one) and mixes their ``target`` rows.
    """
    x = np.asarray(x, dtype=np.float32)
    vocab_size = len(source)
    m = min(int(top_m), vocab_size)
    out = np.zeros((len(x), target.shape[1]), dtype=np.float32)
    for start in range(0, len(x), chunk):
        sims = x[start : start + chunk] @ source.T  # [c, V]
        if m < vocab_size:
            idx = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        else:
            idx = np.broadcast_to(np.arange(vocab_size), sims.shape)
        top = np.take_along_axis(sims, idx, axis=1).astype(np.float64)
        if temperature == 0:
            weights = np.zeros_like(top)
            weights[np.arange(len(top)), top.argmax(axis=1)] = 1.0
        else:
            logits = (top - top.max(axis=1, keepdims=True)) / temperature
            weights = np.exp(logits)
            weights /= weights.sum(axis=1, keepdims=True)
        out[start : start + chunk] = np.einsum("cm,cmd->cd", weights, target[idx].astype(np.float64))
    return l2_normalize(out)


class BridgedEncoder(ModalityDispatch):
    """A vision (image+text) and an audio (audio+text) encoder joined through a text vocabulary."""

    modalities = ("image", "audio", "text")

    def __init__(self, vision: Encoder, audio: Encoder, vocab: Sequence[str], *, top_m: int = DEFAULT_TOP_M,
                 temperature: float = DEFAULT_TEMPERATURE, bind: ProjectionHead | None = None,
                 cache_dir: Path | str | None = None, spec: str | None = None):
        for name, enc, needs in (("vision", vision, ("image", "text")), ("audio", audio, ("audio", "text"))):
            if not set(needs) <= set(enc.modalities):
                raise ModelError(
                    f"the {name} encoder {enc.spec} embeds {', '.join(enc.modalities)}; "
                    f"the bridge needs {' and '.join(needs)}."
                )
        vocab = list(vocab)
        if not vocab:
            raise ModelError(
                "the bridge vocabulary is empty; give it at least one text (e.g. the shipped sound_events.txt)."
            )
        if not all(isinstance(v, str) and v.strip() for v in vocab):
            raise ModelError("every bridge vocabulary entry must be a non-empty string.")
        if isinstance(top_m, bool) or not isinstance(top_m, int) or top_m < 1:
            raise ModelError(f"top_m must be a whole number of at least 1, not {top_m!r}.")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ModelError(f"temperature must be a finite number >= 0, not {temperature!r}.")

        self.vision, self.audio = vision, audio
        self._vision_space = vision.index_space("image")
        self._audio_space = audio.index_space("audio")
        self.spaces = {CLIP_SPACE: vision.spaces[self._vision_space], CLAP_SPACE: audio.spaces[self._audio_space]}
        self.vocab = vocab
        self.vocab_hash = vocab_hash(vocab)
        self.top_m = top_m
        self.temperature = float(temperature)
        self.bind = bind
        self.model_id = f"{vision.model_id}+{audio.model_id}"
        if bind is not None:
            self._check_bind(bind)
            self.model_id += f"+bind@{bind.digest()}"
        self.spec = spec or f"{vision.spec}+{audio.spec}" + ("+bind" if bind is not None else "+bridge")
        self.sample_rate = audio.sample_rate
        self.audio_window_s = audio.audio_window_s
        self.image_short_side = getattr(vision, "image_short_side", 0) or 0  # images go to the vision tower
        self.device = vision.device
        key = hashlib.sha256(
            f"{_CACHE_VERSION}\n{vision.model_id}\n{audio.model_id}\n{self.vocab_hash}".encode()
        ).hexdigest()[:20]
        root = Path(cache_dir).expanduser() if cache_dir else _default_cache_dir()
        self.cache_path = root / "bridge" / f"vocab-{key}.npz"
        self._tables: tuple[np.ndarray, np.ndarray] | None = None

    def _check_bind(self, bind: ProjectionHead) -> None:
        want = (self.spaces[CLAP_SPACE], self.spaces[CLIP_SPACE])
        if (bind.in_dim, bind.out_dim) != want:
            raise ModelError(
                f"the bind head maps {bind.in_dim} → {bind.out_dim} dims, "
                f"but these encoders need {want[0]} → {want[1]}."
            )
        for key, enc in (("audio_model_id", self.audio), ("vision_model_id", self.vision)):
            trained_for = bind.meta.get(key)
            if trained_for and trained_for != enc.model_id:
                raise ModelError(
                    f"the bind head was trained for {trained_for}, not {enc.model_id}; train one for this pair."
                )

    # -- the vocabulary in both spaces -------------------------------------------------------------------------

    def vocab_tables(self, progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(CLIP-text [V, d_clip], CLAP-text [V, d_clap]) embeddings of the vocabulary: from the cache, else
        computed once."""
        if self._tables is None:
            self._tables = self._load_cached() or self._compute_tables(progress)
        return self._tables

    def prepare(self, progress: Callable[[int, int], None] | None = None) -> BridgedEncoder:
        """Embed (or load) the vocabulary now rather than at the first cross-space query.

        Embedding it is a one-time cost (minutes on a CPU for the shipped ~3.5k entries with real towers);
        ``progress(done, total)`` is called as entries go through the two text towers (total = 2 × V).
        """
        self.vocab_tables(progress)
        return self

    def _expected_shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return (len(self.vocab), self.spaces[CLIP_SPACE]), (len(self.vocab), self.spaces[CLAP_SPACE])

    def _load_cached(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.cache_path.is_file():
            return None
        try:
            with np.load(self.cache_path, allow_pickle=False) as data:
                clip, clap, stored_hash = data["clip"], data["clap"], str(data["vocab_hash"])
        except Exception as e:  # a damaged cache is rebuilt, not fatal
            log.warning("ignoring unreadable bridge cache %s (%s)", self.cache_path, type(e).__name__)
            return None
        if stored_hash != self.vocab_hash or (clip.shape, clap.shape) != self._expected_shapes():
            return None
        return clip.astype(np.float32), clap.astype(np.float32)

    def _compute_tables(self, progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        log.info("embedding the %d-entry bridge vocabulary with both text towers (cached afterwards)", len(self.vocab))
        total, done = 2 * len(self.vocab), 0
        tables = []
        for enc in (self.vision, self.audio):
            parts = []
            for start in range(0, len(self.vocab), _VOCAB_CHUNK):
                chunk = self.vocab[start : start + _VOCAB_CHUNK]
                parts.append(np.asarray(enc.embed("text", chunk, space=enc.index_space("text")), dtype=np.float32))
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            tables.append(np.concatenate(parts) if len(parts) > 1 else parts[0])
        clip, clap = tables
        want_clip, want_clap = self._expected_shapes()
        for name, table, want, enc in (("CLIP", clip, want_clip, self.vision), ("CLAP", clap, want_clap, self.audio)):
            if table.shape != want:
                raise ModelError(
                    f"the {name}-side text embeddings of the vocabulary from {enc.spec} have shape {table.shape}, "
                    f"expected {want}."
                )
            if not np.isfinite(table).all():
                raise ModelError(f"{enc.spec} produced non-finite embeddings for the bridge vocabulary.")
        self._save_cache(clip, clap)
        return clip, clap

    def _save_cache(self, clip: np.ndarray, clap: np.ndarray) -> None:
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_path.parent, suffix=".npz.tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, clip=clip, clap=clap, vocab_hash=np.array(self.vocab_hash))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.cache_path)
        except OSError as e:  # the bridge still works, it just recomputes next time
            log.warning("could not write the bridge cache %s (%s)", self.cache_path, e)

    # -- the Encoder protocol -----------------------------------------------------------------------------------

    def index_space(self, modality: str) -> str:
        """Images and texts are indexed in ``clip``; audio in ``clap``, or in ``clip`` when a bind head maps it."""
        spaces = {"image": CLIP_SPACE, "text": CLIP_SPACE, "audio": CLIP_SPACE if self.bind is not None else CLAP_SPACE}
        base = parent_modality(modality)
        if base not in spaces:
            raise unsupported_modality(self, modality)
        return spaces[base]

    def _space(self, space: str | None, modality: str) -> str:
        space = space or self.index_space(modality)
        if space not in self.spaces:
            raise ModelError(f"{self.spec} has the spaces {CLIP_SPACE} and {CLAP_SPACE}, not {space!r}.")
        return space

    def _embed_text(self, texts: Sequence[str], space: str | None = None) -> np.ndarray:
        """Texts by the CLIP text tower (space ``clip``, default) or the CLAP text tower (space ``clap``)."""
        if self._space(space, "text") == CLAP_SPACE:
            return self.audio.embed("text", texts, space=self.audio.index_space("text"))
        return self.vision.embed("text", texts, space=self.vision.index_space("text"))

    def _embed_images(self, images: Sequence, space: str | None = None) -> np.ndarray:
        """Images in ``clip`` (default) or translated into ``clap`` through the vocabulary."""
        target = self._space(space, "image")
        z = self.vision.embed("image", images, space=self._vision_space)
        if target == CLIP_SPACE:
            return z
        clip, clap = self.vocab_tables()
        return translate(z, clip, clap, self.top_m, self.temperature)

    def _embed_audio(self, waves: Sequence[np.ndarray], space: str | None = None) -> np.ndarray:
        """Audio in ``clap`` or in ``clip`` (by the bind head when there is one, else through the vocabulary)."""
        target = self._space(space, "audio")
        z = self.audio.embed("audio", waves, space=self._audio_space)
        if target == CLAP_SPACE:
            return z
        if self.bind is not None:
            return l2_normalize(self.bind.project(z)) if len(z) else np.zeros((0, self.spaces[CLIP_SPACE]), np.float32)
        clip, clap = self.vocab_tables()
        return translate(z, clap, clip, self.top_m, self.temperature)

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "model_id": self.model_id,
            "modalities": list(self.modalities),
            "spaces": dict(self.spaces),
            "index_spaces": {m: self.index_space(m) for m in self.modalities},
            "device": self.device,
            "sample_rate": self.sample_rate,
            "audio_window_s": self.audio_window_s,
            "vision": self.vision.describe(),
            "audio": self.audio.describe(),
            "join": "bind head" if self.bind is not None else "text vocabulary",
            "vocab_size": len(self.vocab),
            "vocab_hash": self.vocab_hash,
            "top_m": self.top_m,
            "temperature": self.temperature,
            "bind": self.bind.config() | {"digest": self.bind.digest()} if self.bind is not None else None,
            "cache_path": str(self.cache_path),
        }


def _default_cache_dir() -> Path:
    from xsearch.core.paths import data_home

    return data_home() / "cache"


def load_pair(parsed_spec: ModelSpec, device: str | None = None, *, load: Callable[[str, str | None], Encoder],
              cache_dir: Path | str | None = None) -> BridgedEncoder:
    """``<image+text spec>+<audio+text spec>[+bind:<dir> | +bridge[:<vocab file>]]`` → a BridgedEncoder.

    Usually ``openclip:…+clap:…``; builtin checkpoints may stand on either side. ``load(spec, device)`` builds
    each side (the registry passes its cached ``load_encoder``, so this module never imports the registry). The
    bind head / vocabulary is checked before the (large) models load.
    """
    if len(parsed_spec.parts) < 2:
        raise ModelError(f"{parsed_spec.text!r} is not a pair of an image+text and an audio+text model.")
    vision_part, audio_part = parsed_spec.parts[0], parsed_spec.parts[1]
    bind_part, bridge_part = parsed_spec.part("bind"), parsed_spec.part("bridge")
    bind = None
    suffix = ""
    if bind_part is not None:
        from xsearch.encoders.projection import ProjectionHead

        bind_dir = Path(bind_part.args[0]).expanduser().resolve()
        bind = ProjectionHead.load(bind_dir)
        suffix = f"+bind:{bind_dir}"
    vocab_file = None
    if bridge_part is not None:
        suffix = "+bridge"
        if bridge_part.args:
            vocab_file = Path(bridge_part.args[0]).expanduser().resolve()
            suffix = f"+bridge:{vocab_file}"
    vocab = load_vocab(vocab_file)

    vision = load(vision_part.text, device)
    audio = load(audio_part.text, device)
    return BridgedEncoder(
        vision, audio, vocab, bind=bind, cache_dir=cache_dir, spec=f"{vision.spec}+{audio.spec}{suffix}"
    )
