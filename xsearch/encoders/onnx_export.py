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


def export_module(module, example, path: Path, input_name, *, dynamic: dict | None = None) -> None:
    """``module(example)`` → ``path`` (fp32), batch axis dynamic, written atomically.

    Several inputs: ``example`` a tuple of tensors and ``input_name`` a tuple of names; ``dynamic`` {input name:
    {axis: label}} for more dynamic axes than the batch (e.g. a padded token sequence's length)."""
    import torch

    examples = tuple(example) if isinstance(example, (tuple, list)) else (example,)
    names = [input_name] if isinstance(input_name, str) else list(input_name)
    axes = {name: {0: "batch"} for name in names} | (dynamic or {}) | {"embedding": {0: "batch"}}

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        prev = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused attention path has no ONNX form
        try:
            # the exporter prints whole graphs and warnings; its first error line is what we keep
            with torch.no_grad(), _quiet():
                torch.onnx.export(module, examples, tmp, input_names=names, output_names=["embedding"],
                                  dynamic_axes=axes, opset_version=OPSET, dynamo=False)
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


class _AudioAfterMel:
    """The builtin audio tower from its log-Mel input ``[B, 1, n_mels, frames]`` on (trunk + head)."""

    def __new__(cls, model, example):
        import torch

        trunk = model.trunks["audio"]
        with torch.no_grad():
            in_h, in_w = trunk.blocks(trunk.norm(example)).shape[-2:]
        out_h, out_w = trunk.pool.output_size

        def pooling(n_in: int, n_out: int) -> torch.Tensor:
            """Adaptive average pooling along one axis as a matrix (the exporter refuses uneven adaptive pools;
            the window's frame count is fixed, so this one is constant)."""
            m = torch.zeros(n_out, n_in)
            for i in range(n_out):
                start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
                m[i, start:end] = 1.0 / (end - start)
            return m

        class AudioAfterMel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                self.register_buffer("ph", pooling(int(in_h), int(out_h)))
                self.register_buffer("pw", pooling(int(in_w), int(out_w)))

            def forward(self, x):
                h = trunk.blocks(trunk.norm(x))
                h = torch.matmul(torch.matmul(self.ph, h), self.pw.t())  # [B, C, out_h, out_w]
                return self.model.heads["audio"](h.flatten(1))

        return AudioAfterMel().eval()


def _save_mel_constants(model, folder: Path) -> None:
    """The front end's window and mel filter bank (``audio_mel.npz``), for numpy to compute what torchaudio does."""
    import numpy as np

    front = model.preprocessors["audio"].mel
    spec = front.mel.spectrogram
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez(f, window=spec.window.detach().cpu().numpy(), fb=front.mel.mel_scale.fb.detach().cpu().numpy(),
                 n_fft=spec.n_fft, hop=spec.hop_length, eps=front.eps)
    _publish(tmp, folder / "audio_mel.npz")


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
            if tower == "audio":  # torchaudio's STFT is complex-valued and the ONNX exporter refuses it (torch 2.x):
                # the log-Mel front end runs in numpy (onnx_builtin.log_mel) from its saved constants, the rest here
                example = model.preprocessors["audio"](example).detach()
                module, name = _AudioAfterMel(model, example), "log_mel"
                _save_mel_constants(model, folder)
            else:
                module = _Tower(model, tower)
            if not fp32.is_file():
                export_module(module, example, fp32, name)
            if not int8.is_file():
                quantize_int8(fp32, int8)
        except Exception as e:  # the exporter's errors are long and varied: keep their first line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            failed[tower] = first
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{tower}.failed").write_text(first + "\n")
    return failed


def as_module(owner, forward):
    """``forward(*tensors)`` as a module that owns ``owner`` (so its weights are exported as the graph's)."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.owner = owner

        def forward(self, *xs):
            return forward(*xs)

    return Tower().eval()


def first_line(error: BaseException) -> str:
    """The exporter's errors are long and varied: their first line, at most 300 characters."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
