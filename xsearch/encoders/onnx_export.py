"""Export encoder towers to ONNX (dynamic batch) and quantize them to int8 — the one place torch meets ONNX.

Written to a temporary name and renamed, so concurrent processes never load half a file. A tower that will not
export leaves ``<tower>.failed`` with the reason, so later processes go straight to torch instead of retrying.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

OPSET = 17


def export_module(module, example, path: Path, input_name: str) -> None:
    """``module(example)`` → ``path`` (fp32), batch axis dynamic, written atomically."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        prev = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused attention path has no ONNX form
        try:
            # the exporter prints whole graphs and warnings; its first error line is what we keep
            with torch.no_grad(), _quiet():
                torch.onnx.export(module, (example,), tmp, input_names=[input_name], output_names=["embedding"],
                                  dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
                                  opset_version=OPSET, dynamo=False)
        finally:
            torch.backends.mha.set_fastpath_enabled(prev)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _quiet():
    sink = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _publish(tmp: str, path: Path) -> None:
    """Readable by everyone like the model's other cached files (mkstemp makes 0600), then renamed into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the weights (activations quantized on the fly), written atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with _quiet():
            quantize_dynamic(str(src), tmp, weight_type=QuantType.QInt8)
        _publish(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _Tower:
    """One builtin tower as a module of one tensor: ``x -> unnormalised embedding``."""

    def __new__(cls, model, tower: str):
        import torch

        class Tower(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, x):
                return self.model.encode(tower, x, normalize=False)

        return Tower().eval()


def builtin_examples(cfg) -> dict:
    import torch

    window = int(round(cfg.sample_rate * cfg.audio_window_s))
    ids = torch.zeros(2, cfg.context_length, dtype=torch.long)
    ids[:, :4] = torch.tensor([49406, 320, 736, 49407])
    return {"image": ("pixels", torch.rand(2, 3, cfg.image_size, cfg.image_size)),
            "audio": ("wave", torch.randn(2, window) * 0.1),
            "text": ("token_ids", ids)}


def export_builtin(ckpt_dir: Path, folder: Path) -> dict[str, str]:
    """Every builtin tower of ``ckpt_dir`` → ``folder/<tower>.onnx`` and ``<tower>.int8.onnx``; {tower: error}."""
    from xsearch.encoders import runtimes
    from xsearch.encoders.builtin import load_checkpoint

    runtimes.note(f"runtime: exporting the builtin towers to ONNX once, into {folder}")
    model, _ = load_checkpoint(ckpt_dir)
    failed = {}
    for tower, (name, example) in builtin_examples(model.cfg).items():
        fp32, int8 = folder / f"{tower}.onnx", folder / f"{tower}.int8.onnx"
        try:
            if tower == "audio":  # torchaudio's STFT is complex-valued: the ONNX exporter refuses it (torch 2.x)
                raise RuntimeError("the log-Mel front end's STFT has no ONNX export")
            if not fp32.is_file():
                export_module(_Tower(model, tower), example, fp32, name)
            if not int8.is_file():
                quantize_int8(fp32, int8)
        except Exception as e:  # the exporter's errors are long and varied: keep their first line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            failed[tower] = first
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{tower}.failed").write_text(first + "\n")
    return failed
