"""open_clip text queries without torch: the text tower's ONNX export and our CLIP tokenizer, nothing else.

Importing open_clip imports torch (~2-4 s of a one-shot CLI query). Once an open_clip encoder has run its text tower
on ONNX Runtime it leaves ``text-query.json`` beside the export (``OpenClipEncoder._remember_text_query``): its spec,
model id, dimension, context length and the checkpoint file's size and mtime. A later process that asks for the same
spec under an ONNX runtime on the CPU gets :class:`OpenClipTextQuery` (:func:`load_openclip`, the ``openclip`` kind's
factory): text is tokenized by ``xsearch.encoders.tokenizer`` (id-for-id open_clip's SimpleTokenizer) and embedded by
the exported tower; anything else (an image, a checkpoint that changed since) loads the full ``OpenClipEncoder``
first. Only models whose tokenizer is open_clip's plain SimpleTokenizer (lower-case cleaning, no extra special
tokens) leave the file; the others always load in full.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xsearch.encoders import runtimes
from xsearch.encoders.base import DEFAULT_SPACE, l2_normalize
from xsearch.encoders.onnx_towers import TEXT_QUERY_FILE, file_stamp


def _find(spec: str, runtime: str) -> tuple[dict, Path] | None:
    """The remembered text tower of ``spec`` whose checkpoint is unchanged, and its ONNX file for ``runtime``."""
    root = runtimes.export_dir("x").parent
    name = "text.int8.onnx" if runtime == "onnx-int8" else "text.onnx"
    for path in sorted(root.glob(f"*/{TEXT_QUERY_FILE}")):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("spec") == spec and (path.parent / name).is_file() \
                and file_stamp(meta.get("checkpoint", "")) == meta.get("stamp"):
            return meta, path.parent / name
    return None


def load_openclip(arch: str, pretrained: str, device: str | None = None, **kwargs):
    """The ``openclip`` kind's factory: :class:`OpenClipTextQuery` where a remembered text tower fits (ONNX runtime,
    on the CPU), else the full :class:`OpenClipEncoder`."""
    runtime = runtimes.current_runtime()
    on_cpu = device == "cpu" or (device in (None, "", "auto") and not runtimes.gpu_visible())
    found = _find(f"openclip:{arch}:{pretrained}", runtime) if runtime != "torch" and on_cpu and not kwargs else None
    if found is None:
        from xsearch.encoders.openclip import OpenClipEncoder

        return OpenClipEncoder(arch, pretrained, device, **kwargs)
    return OpenClipTextQuery(found[0], found[1], arch, pretrained, runtime)


class OpenClipTextQuery:
    """An open_clip encoder whose text tower runs from its ONNX export without torch; any other use (images,
    attributes only the full encoder has) builds the full encoder once and hands over to it."""

    modalities = ("image", "text")
    sample_rate = 0
    audio_window_s = 0.0
    device = "cpu"

    def __init__(self, meta: dict, onnx_file: Path, arch: str, pretrained: str, runtime: str):
        import onnxruntime as ort

        from xsearch.encoders.tokenizer import ClipTokenizer

        self.spec, self.model_id, self.dim = meta["spec"], meta["model_id"], int(meta["dim"])
        self.spaces = {DEFAULT_SPACE: self.dim}
        self.runtime = runtime
        self._args = (arch, pretrained)
        self._tokenizer = ClipTokenizer(int(meta["context_length"]))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._full = None
        self._lock = threading.Lock()

    def index_space(self, modality: str) -> str:
        return DEFAULT_SPACE

    def embed(self, modality: str, batch: Sequence, space: str | None = None) -> np.ndarray:
        if modality != "text" or space not in (None, DEFAULT_SPACE):
            return self.full().embed(modality, batch, space)
        texts = list(batch)
        if not texts or not all(isinstance(t, str) for t in texts):
            return self.full().embed(modality, texts, space)  # its own errors and empty result
        tokens = self._tokenizer(texts)
        return l2_normalize(self._session.run(None, {self._session.get_inputs()[0].name: tokens})[0])

    def full(self):
        """The full OpenClipEncoder (torch, open_clip), built on first need."""
        with self._lock:
            if self._full is None:
                from xsearch.encoders.openclip import OpenClipEncoder

                self._full = OpenClipEncoder(*self._args, "cpu")
        return self._full

    def runtimes(self) -> dict:
        return self.full().runtimes()

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_full", "_args", "_lock"):
            raise AttributeError(name)
        return getattr(self.full(), name)
