"""The builtin model on ONNX Runtime: the same towers, the same model id, no torch in the process.

Each tower (image, audio, text) is exported once per model id by :mod:`xsearch.encoders.onnx_export` (torch is
imported for that, once) into the runtime cache (:func:`xsearch.encoders.runtimes.export_dir`). Preprocessing is
numpy + PIL, step for step what the torch path does (torchvision's bicubic Resize of the short side, CenterCrop,
ToTensor; the CLIP BPE of :mod:`xsearch.encoders.tokenizer`). A tower that cannot be exported runs on torch, said in
one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from xsearch.core.errors import ModelError
from xsearch.encoders import runtimes
from xsearch.encoders._checkpoint import CONFIG_FILE, WEIGHTS_FILE
from xsearch.encoders.base import DEFAULT_SPACE, SingleSpace, TowersByModality, l2_normalize, weights_digest

TOWERS = ("image", "audio", "text")


def tower_file(folder: Path, tower: str, runtime: str) -> Path:
    return folder / (f"{tower}.int8.onnx" if runtime == "onnx-int8" else f"{tower}.onnx")


def preprocess_images(images: Sequence, size: int) -> np.ndarray:
    """torchvision's Resize(size, bicubic, antialias) + CenterCrop(size) + ToTensor on PIL images, in numpy."""
    from PIL import Image

    out = np.zeros((len(images), 3, size, size), dtype=np.float32)
    for i, im in enumerate(images):
        if im.width == 0 or im.height == 0:
            raise ModelError("cannot embed an image of zero size.")
        im = im.convert("RGB")
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        if short != size:
            new_short, new_long = size, int(size * long / short)
            im = im.resize((new_short, new_long) if w <= h else (new_long, new_short), Image.BICUBIC)
        w, h = im.size
        top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
        im = im.crop((left, top, left + size, top + size))
        out[i] = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return out


def log_mel(waves: np.ndarray, constants: Path) -> np.ndarray:
    """``[B, T]`` → ``[B, 1, n_mels, frames]`` log-Mel power, as torchaudio's MelSpectrogram (centred, reflect-padded,
    periodic Hann window, power 2, HTK filter bank saved at export) followed by ``log(mel + eps)``."""
    c = np.load(constants)
    n_fft, hop = int(c["n_fft"]), int(c["hop"])
    x = np.pad(waves.astype(np.float64), ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    frames = 1 + (x.shape[1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[:, idx] * c["window"], axis=-1)) ** 2  # [B, frames, n_fft // 2 + 1]
    mel = power @ c["fb"].astype(np.float64)  # [B, frames, n_mels]
    return np.log(mel + float(c["eps"])).transpose(0, 2, 1)[:, None].astype(np.float32)


class OnnxBuiltinEncoder(TowersByModality, SingleSpace):
    """The Encoder protocol over ONNX Runtime sessions of the builtin towers (CPU)."""

    modalities = TOWERS

    def __init__(self, ckpt_dir: Path, config: dict, *, spec: str, digest: str, runtime: str, batch_size: int = 64):
        from xsearch.encoders.tokenizer import ClipTokenizer

        model = config.get("model", {})
        self.ckpt_dir, self.meta, self.spec, self.runtime = ckpt_dir, config, spec, runtime
        self.dim = int(model.get("embed_dim", 256))
        self.image_size = int(model.get("image_size", 64))
        self.sample_rate = int(model.get("sample_rate", 16000))
        self.audio_window_s = float(model.get("audio_window_s", 2.0))
        self.window = int(round(self.sample_rate * self.audio_window_s))
        self.image_short_side = self.image_size
        self.tokenizer = ClipTokenizer(context_length=int(model.get("context_length", 32)))
        self.spaces = {DEFAULT_SPACE: self.dim}
        self.device, self.trained, self.batch_size = "cpu", True, batch_size
        self.model_id = f"{spec}@{digest}:{self.dim}"
        self.folder = runtimes.export_dir(self.model_id)
        self._sessions: dict[str, object] = {}
        self._torch = None  # the torch encoder, only for a tower that could not be exported

    def _prepare(self, tower: str, chunk: Sequence) -> np.ndarray:
        if tower == "image":
            return preprocess_images(chunk, self.image_size)
        if tower == "text":
            return self.tokenizer(list(chunk))
        batch = np.zeros((len(chunk), self.window), dtype=np.float32)
        for i, w in enumerate(chunk):
            w = np.asarray(w, dtype=np.float32).reshape(-1)[: self.window]
            batch[i, : len(w)] = w
        return log_mel(batch, self.folder / "audio_mel.npz")

    def session(self, tower: str):
        """The tower's ONNX Runtime session (exported on first use); None when it runs on torch instead."""
        if tower not in self._sessions:
            path = tower_file(self.folder, tower, self.runtime)
            if not path.is_file() and not (self.folder / f"{tower}.failed").is_file():
                from xsearch.encoders.onnx_export import export_builtin

                export_builtin(self.ckpt_dir, self.folder)
            if path.is_file():
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.log_severity_level = 3
                if tower == "text":
                    # An embedding table and a few small layers: the extended graph optimisations gain it nothing
                    # (batch of 64: 15.3 vs 15.4 ms) and cost 40-80 ms at session creation, paid by every CLI query.
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
                self._sessions[tower] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            else:
                reason = (self.folder / f"{tower}.failed").read_text().strip() if (
                    self.folder / f"{tower}.failed").is_file() else "no exported file"
                runtimes.note(f"runtime: the builtin {tower} tower runs on torch ({self.runtime} export failed: "
                              f"{reason})")
                self._sessions[tower] = None
        return self._sessions[tower]

    def _embed(self, tower: str, items: Sequence, space: str | None) -> np.ndarray:
        self._check_space(space)
        items = list(items)
        sess = self.session(tower)
        if sess is None:
            return self._torch_encoder().embed(tower, items, space)
        outs = []
        for start in range(0, len(items), self.batch_size):
            x = self._prepare(tower, items[start:start + self.batch_size])
            outs.append(sess.run(None, {sess.get_inputs()[0].name: x})[0])
        if not outs:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.concatenate(outs))

    def _torch_encoder(self):
        if self._torch is None:
            from xsearch.encoders.builtin import BuiltinEncoder, load_checkpoint

            model, _ = load_checkpoint(self.ckpt_dir)
            self._torch = BuiltinEncoder(model, spec=self.spec, digest=self.model_id.split("@")[1].split(":")[0],
                                         device="cpu", meta=self.meta)
        return self._torch

    def describe(self) -> dict:
        return {"spec": self.spec, "model_id": self.model_id, "modalities": list(self.modalities), "dim": self.dim,
                "device": self.device, "runtime": self.runtime, "onnx_files": str(self.folder), "trained": True,
                "sample_rate": self.sample_rate, "audio_window_s": self.audio_window_s, "batch_size": self.batch_size,
                "towers": {t: self.runtime if self.session(t) is not None else "torch" for t in TOWERS}}


def load_onnx_builtin(path: str | Path | None, runtime: str):
    """The shipped builtin model (or a checkpoint dir) on ONNX Runtime; torch when there are no trained weights
    (the untrained fallback is a random model, nothing to export)."""
    from importlib import resources

    folder = Path(path).expanduser() if path else Path(str(resources.files("xsearch.encoders") / "weights" / "builtin"))
    weights, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    if not weights.is_file() or not config_path.is_file():
        from xsearch.encoders.builtin import load_builtin

        return load_builtin(path)  # its own clear error (a checkpoint dir) or the untrained model (shipped)
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable checkpoint config {config_path}: {e}") from None
    if config.get("architecture") != "xsearch-builtin-v1":
        from xsearch.encoders.builtin import load_checkpoint

        load_checkpoint(folder)  # raises the architecture error
    spec = f"builtin:{folder}" if path else "builtin"
    return OnnxBuiltinEncoder(folder, config, spec=spec, digest=weights_digest([weights]), runtime=runtime)


def load_builtin(path: str | None = None, device: str | None = None):
    """The ``builtin`` kind's factory: ONNX Runtime towers when the runtime says so (on CPU), else torch."""
    runtime = runtimes.current_runtime()
    on_cpu = device == "cpu" or (device in (None, "", "auto") and not runtimes.gpu_visible())
    if runtime != "torch" and on_cpu:
        return load_onnx_builtin(path, runtime)
    from xsearch.encoders.builtin import load_builtin as load_torch

    return load_torch(path, device=device)
