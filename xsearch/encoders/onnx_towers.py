"""The towers of the pretrained encoders (open_clip, CLAP) on ONNX Runtime, preprocessing left to the libraries.

Only the tower forward moves: open_clip's transforms and tokenizer, transformers' ``ClapFeatureExtractor`` and
tokenizer still make the inputs, as on torch. Each tower is exported on its first use (dynamic batch; the token
length too where the tokenizer pads to the longest text), into the runtime cache
(:func:`xsearch.encoders.runtimes.export_dir`) under the model id — spec, the weights' content hash, dim — plus a
fingerprint of the architecture config, so other weights or another config never load a stale export. Files are
written to a temporary name and renamed (:mod:`xsearch.encoders.onnx_export`): a crash mid-export leaves nothing
that a later process loads. ``onnx-int8`` quantizes the fp32 export (dynamic int8 weights).

When the export or the session fails the tower runs on torch, said in one line on stderr naming the model and the
reason; a failed export leaves ``<tower>[.int8].failed`` so later processes go straight to torch (delete it to
try again).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xsearch.encoders import onnx_export, runtimes


class OnnxTowersMixin:
    """What an encoder whose towers may run on ONNX Runtime shares: it sets ``self._onnx`` (the runner from
    :func:`for_encoder`, or None: every tower on torch) and defines ``_tower_export(tower) -> TowerExport``."""

    _onnx = None

    def onnx_tower(self, tower: str):
        """The tower's ONNX Runtime runner (exported on first use), or None: it runs on torch."""
        if self._onnx is None:
            return None
        return self._onnx.forward(tower, lambda: self._tower_export(tower))

    def runtimes(self) -> dict:
        """{tower: what it runs on}: torch, or onnx / onnx-int8 (the towers are opened, so exported, to say so)."""
        if self._onnx is None:
            return {t: "torch" for t in self.modalities}
        for tower in self.modalities:
            self.onnx_tower(tower)
        return dict(self._onnx.status)


#: Left beside an open_clip model's exported text tower, for text queries that skip torch (openclip_query.py).
TEXT_QUERY_FILE = "text-query.json"


def file_stamp(path) -> list[int] | None:
    """[size, mtime_ns] of a file (a checkpoint), None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


@dataclass
class TowerExport:
    """What to export for one tower: a module of ``inputs`` → unnormalised embedding and example tensors for them."""

    module: object
    example: tuple
    inputs: tuple[str, ...]
    dynamic: dict = field(default_factory=dict)  # {input: {axis: label}} beyond the batch axis


def fingerprint(config) -> str:
    """A short hash of an architecture config (a dict or JSON text): part of the export's cache key."""
    text = config if isinstance(config, str) else json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def for_encoder(label: str, model_id: str, config_fingerprint: str, device: str) -> OnnxTowers | None:
    """The ONNX Runtime towers of a pretrained encoder under the runtime in force; None on torch or off the CPU."""
    runtime = runtimes.current_runtime()
    if runtime == "torch" or device != "cpu":
        return None
    return OnnxTowers(label, model_id, config_fingerprint, runtime)


class OnnxTowers:
    """Per-tower ONNX Runtime sessions of one model; :meth:`forward` gives a tower's runner or None (torch)."""

    def __init__(self, label: str, model_id: str, config_fingerprint: str, runtime: str):
        self.label, self.runtime = label, runtime
        self.folder = runtimes.export_dir(f"{model_id}#{config_fingerprint}")
        self._runners: dict[str, Callable | None] = {}
        self.status: dict[str, str] = {}  # tower -> "onnx" / "onnx-int8" / "torch (<reason>)"

    def forward(self, tower: str, build: Callable[[], TowerExport]) -> Callable[..., np.ndarray] | None:
        """``run(**arrays) -> [n, dim] float32`` on ONNX Runtime (exported on first use), or None: use torch."""
        if tower not in self._runners:
            self._runners[tower] = self._open(tower, build)
        return self._runners[tower]

    def _file(self, tower: str) -> Path:
        return self.folder / (f"{tower}.int8.onnx" if self.runtime == "onnx-int8" else f"{tower}.onnx")

    def _open(self, tower: str, build: Callable[[], TowerExport]):
        path = self._file(tower)
        mark = path.with_suffix(".failed")
        if mark.is_file():
            return self._torch(tower, f"{self.runtime} export failed earlier: {mark.read_text().strip()}; "
                                      f"delete {mark} to try again")
        if not path.is_file():
            fp32 = self.folder / f"{tower}.onnx"
            doing = "quantizing" if fp32.is_file() else "exporting"
            runtimes.note(f"runtime: {doing} the {tower} tower of {self.label} for {self.runtime} once, into "
                          f"{self.folder}")
            try:
                if not fp32.is_file():
                    spec = build()
                    onnx_export.export_module(spec.module, spec.example, fp32, spec.inputs, dynamic=spec.dynamic)
                if path != fp32:
                    onnx_export.quantize_int8(fp32, path)
            except Exception as e:
                reason = onnx_export.first_line(e)
                write_atomically(mark, reason + "\n")
                return self._torch(tower, f"{self.runtime} export failed: {reason}")
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            return self._torch(tower, f"cannot open {path.name} in ONNX Runtime: {onnx_export.first_line(e)}")
        names = [i.name for i in session.get_inputs()]  # the exporter drops inputs the graph does not use
        self.status[tower] = self.runtime

        def run(**arrays) -> np.ndarray:
            return session.run(None, {n: arrays[n] for n in names})[0]

        return run

    def _torch(self, tower: str, reason: str) -> None:
        runtimes.note(f"runtime: the {tower} tower of {self.label} runs on torch ({reason})")
        self.status[tower] = f"torch ({reason})"
        return None


def write_atomically(path: Path, text: str) -> None:
    """A small file of the cache (a failure mark, a query file); a cache that cannot be written (read-only, not a
    folder) only means no file: the next process tries again (and says so again)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass
