"""CLAP audio + text encoders through transformers: ``clap:<hub id | local directory>``.

- Audio: transformers' ``ClapFeatureExtractor`` at its own ``sampling_rate`` (48 kHz for LAION CLAP). The
  encoder's ``audio_window_s`` is the extractor's ``max_length_s`` (10 s), so callers that cut audio into
  windows of that length never hit CLAP's random cropping; shorter clips are repeat-padded ("repeatpad", how
  CLAP was trained), even a clip of a single sample. A clip longer than the window is not cropped at random
  either: it is embedded window by window and the unit vectors are averaged (a last piece under a quarter
  window is dropped). Fusion models get the fusion input with ``is_longer`` all False, so no clip is picked
  at random for the fusion branch; non-fusion models get ``truncation="rand_trunc"``, which never triggers.
- Text: the model's RoBERTa tokenizer, truncated to the text tower's positions (512 tokens).
- A local directory must hold the tokenizer files (``tokenizer.json``, or ``vocab.json`` + ``merges.txt``):
  transformers would otherwise build an empty tokenizer without complaint, and offline there is no hub to
  fetch one from. Save model, feature extractor and tokenizer with ``save_pretrained`` into one directory.
- A hub id is loaded from the local Hugging Face cache when everything is there (no network at all), else
  downloaded into it when ``HF_HUB_OFFLINE`` is unset and the hub answers a quick probe; otherwise it fails
  with one sentence naming the local-directory alternative.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xsearch.core.errors import MediaError, ModelError, UsageError
from xsearch.encoders import _hub
from xsearch.encoders._batching import BatchRunner
from xsearch.encoders.base import DEFAULT_SPACE, SingleSpace, l2_normalize, pick_device, weights_digest
from xsearch.encoders.onnx_towers import OnnxTowersMixin

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_MAX_MISSING_FRACTION = 0.1  # more weights missing than this: the checkpoint is not this architecture
_LOCAL_ALTERNATIVE = "clap:/path/to/local/dir (saved with save_pretrained)"


def _has_tokenizer_files(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    )


class ClapEncoder(OnnxTowersMixin, SingleSpace):
    """transformers ``ClapModel`` as an Encoder: modalities audio + text, one space (``DEFAULT_SPACE``)."""

    modalities = ("audio", "text")

    def __init__(self, source: str, device: str | None = None, *, batch_size: int = 32):
        self.device = pick_device(device)
        local = self._local_dir(source)
        where = str(local) if local else source
        if local:
            config, model, feature_extractor, tokenizer = self._load(where, local, {})
        else:
            hub = {"cache_dir": str(_hub.hub_cache_dir())}
            try:  # everything cached: no network at all
                config, model, feature_extractor, tokenizer = self._load(where, None, {**hub, "local_files_only": True})
            except ModelError:
                raise
            except Exception:
                if _hub.offline():
                    raise self._not_cached(source, f"{_hub.offline_reason()} forbids downloading it") from None
                if not _hub.hub_reachable():
                    raise self._not_cached(source, f"{_hub.hub_endpoint()} does not answer") from None
                try:  # download what is missing into the cache
                    config, model, feature_extractor, tokenizer = self._load(
                        where, None, {**hub, "local_files_only": False}
                    )
                except ModelError:
                    raise
                except Exception as e:
                    raise ModelError(
                        f"cannot load CLAP model {source!r} ({_hub.short_reason(e)}); "
                        f"check the id, or use {_LOCAL_ALTERNATIVE}."
                    ) from None

        self.model = model.to(self.device).eval()
        self.feature_extractor = feature_extractor
        self.tokenizer = tokenizer
        self.fusion = bool(config.audio_config.enable_fusion)
        self._truncation = "fusion" if self.fusion else "rand_trunc"
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.audio_window_s = float(feature_extractor.max_length_s)
        self._window = int(feature_extractor.nb_max_samples)
        self.max_text_tokens = int(min(tokenizer.model_max_length, config.text_config.max_position_embeddings - 2))
        self.dim = int(config.projection_dim)
        self.spaces = {DEFAULT_SPACE: self.dim}
        self.source = where
        self.spec = f"clap:{where}"
        self.model_id = f"{self.spec}@{self._digest(source, local)}:{self.dim}"
        self._runner = BatchRunner(self.device, batch_size)
        from xsearch.encoders import onnx_towers

        self._onnx = onnx_towers.for_encoder(self.spec, self.model_id, onnx_towers.fingerprint(config.to_json_string()),
                                             self.device)

    @staticmethod
    def _local_dir(source: str) -> Path | None:
        path = Path(source).expanduser()
        if path.is_dir():
            return path.resolve()
        if path.exists():
            raise ModelError(f"{path} is a file; clap: needs a hub id or a directory saved with save_pretrained.")
        if source.startswith(("/", ".", "~")) or source.count("/") > 1:
            raise ModelError(f"CLAP directory {path} does not exist.")
        return None

    @staticmethod
    def _load(where: str, local: Path | None, kwargs: dict):
        """(config, model, feature extractor, tokenizer); ModelError for what is there but wrong."""
        from transformers import AutoConfig, AutoTokenizer, ClapFeatureExtractor, ClapModel

        def fail(e: Exception) -> Exception:  # a local dir has no second chance: say what went wrong
            return ModelError(f"cannot load a CLAP model from {local} ({_hub.short_reason(e)}).") if local else e

        try:
            config = AutoConfig.from_pretrained(where, **kwargs)
        except Exception as e:
            raise fail(e) from None
        if config.model_type != "clap":
            raise ModelError(
                f"{where} holds a {config.model_type!r} model, not CLAP; clap: needs a ClapModel checkpoint."
            )
        if local and not _has_tokenizer_files(local):
            raise ModelError(
                f"{local} has no tokenizer files (tokenizer.json, or vocab.json + merges.txt); "
                f"save the tokenizer into it with save_pretrained."
            )
        try:
            model, info = ClapModel.from_pretrained(where, output_loading_info=True, **kwargs)
            feature_extractor = ClapFeatureExtractor.from_pretrained(where, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        except Exception as e:
            raise fail(e) from None
        n_weights = len(model.state_dict())
        missing = info.get("missing_keys") or []
        if len(missing) > _MAX_MISSING_FRACTION * n_weights:
            raise ModelError(
                f"{where} is not a CLAP checkpoint of this configuration: "
                f"{len(missing)} of {n_weights} weights are missing."
            )
        vocab_size = config.text_config.vocab_size
        if len(tokenizer) > vocab_size or len(tokenizer) <= len(set(tokenizer.all_special_ids)):
            raise ModelError(
                f"the tokenizer in {where} ({len(tokenizer)} tokens) does not fit the text tower ({vocab_size} tokens)."
            )
        return config, model, feature_extractor, tokenizer

    @staticmethod
    def _not_cached(source: str, why: str) -> ModelError:
        return ModelError(
            f"CLAP model {source!r} is neither a local directory nor in the local Hugging Face cache, and {why}; "
            f"download it once online or use {_LOCAL_ALTERNATIVE}."
        )

    @staticmethod
    def _digest(source: str, local: Path | None) -> str:
        if local:
            files = sorted(local.glob("*.safetensors")) or sorted(local.glob("*.bin"))
            return weights_digest(files) if files else "noweights"
        for name in _WEIGHT_FILES:
            found = _hub.cached_file(source, name)
            if found is not None:
                return _hub.file_digest(found)
        return "hub"

    def _embed_audio(self, waves: Sequence[np.ndarray], space: str | None = None) -> np.ndarray:
        """Mono float waveforms at ``sample_rate`` → [n, dim] unit vectors."""
        self._check_space(space)
        pieces: list[np.ndarray] = []
        owner: list[int] = []
        for i, wave in enumerate(waves):
            for piece in self._windows(_check_wave(wave, i)):
                pieces.append(piece)
                owner.append(i)
        onnx = self.onnx_tower("audio")
        encode = self._encode_audio if onnx is None else (
            lambda batch: _tensor(onnx(input_features=self.audio_features(batch)["input_features"].numpy())))
        z = self._runner.run(pieces, encode, self.dim)
        if len(pieces) == len(waves):
            return z
        summed = np.zeros((len(waves), self.dim), dtype=np.float64)
        np.add.at(summed, np.asarray(owner), z)
        return l2_normalize(summed)

    def _windows(self, wave: np.ndarray) -> list[np.ndarray]:
        if len(wave) <= self._window:
            return [wave]
        pieces = [wave[s : s + self._window] for s in range(0, len(wave), self._window)]
        if len(pieces[-1]) < self._window // 4:
            pieces.pop()
        return pieces

    def audio_features(self, waves: Sequence[np.ndarray]) -> dict:
        """The model inputs for clips no longer than one window: ``input_features`` and ``is_longer``."""
        import torch

        feats = self.feature_extractor(
            list(waves),
            sampling_rate=self.sample_rate,
            truncation=self._truncation,
            padding="repeatpad",
            return_tensors="pt",
        )
        return {
            "input_features": feats["input_features"].to(self.device, torch.float32),
            "is_longer": torch.zeros((len(waves), 1), dtype=torch.bool, device=self.device),
        }

    def _encode_audio(self, batch):
        return self.model.get_audio_features(**self.audio_features(batch)).pooler_output

    def _embed_text(self, texts: Sequence[str], space: str | None = None) -> np.ndarray:
        """Strings → [n, dim] unit vectors; text past ``max_text_tokens`` tokens is truncated."""
        self._check_space(space)
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise UsageError(f"text {i} of the batch is a {type(t).__name__}, not a string.")

        onnx = self.onnx_tower("text")

        def encode(batch):
            tokens = self.tokenizer(
                list(batch), padding=True, truncation=True, max_length=self.max_text_tokens, return_tensors="pt"
            )
            if onnx is not None:
                return _tensor(onnx(input_ids=tokens["input_ids"].numpy(),
                                    attention_mask=tokens["attention_mask"].numpy()))
            return self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            ).pooler_output

        return self._runner.run(texts, encode, self.dim)

    def _tower_export(self, tower: str):
        """``get_audio_features`` (on the extractor's features, ``is_longer`` all False as on torch) and
        ``get_text_features`` (token length dynamic: texts are padded to the longest) with example inputs."""
        import torch

        from xsearch.encoders.onnx_export import as_module
        from xsearch.encoders.onnx_towers import TowerExport

        model = self.model
        if tower == "audio":
            waves = [np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
                     for n in (self._window, self._window // 3)]

            def audio(x):
                longer = torch.zeros((x.shape[0], 1), dtype=torch.bool)
                return model.get_audio_features(input_features=x, is_longer=longer).pooler_output

            return TowerExport(as_module(model, audio), (self.audio_features(waves)["input_features"],),
                               ("input_features",))
        tokens = self.tokenizer(["a dog barking in the distance far away", "rain"], padding=True, return_tensors="pt")

        def text(ids, mask):
            return model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output

        length = {0: "batch", 1: "tokens"}
        return TowerExport(as_module(model, text), (tokens["input_ids"], tokens["attention_mask"]),
                           ("input_ids", "attention_mask"), {"input_ids": length, "attention_mask": length})

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "model_id": self.model_id,
            "modalities": list(self.modalities),
            "dim": self.dim,
            "device": self.device,
            "sample_rate": self.sample_rate,
            "audio_window_s": self.audio_window_s,
            "fusion": self.fusion,
            "max_text_tokens": self.max_text_tokens,
            "batch_size": self._runner.batch_size,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "towers": self.runtimes(),
        }


def _tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(array)


def _check_wave(wave, index: int) -> np.ndarray:
    """A finite, non-empty mono float32 waveform, or a clear error."""
    try:
        a = np.asarray(wave, dtype=np.float32)
    except (TypeError, ValueError):
        raise UsageError(f"audio {index} of the batch is not a numeric waveform.") from None
    if a.ndim > 1 and sum(s > 1 for s in a.shape) <= 1:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise UsageError(f"audio {index} of the batch has shape {a.shape}; pass mono 1-D waveforms.")
    if a.size == 0:
        raise MediaError(f"audio {index} of the batch has no samples; it cannot be embedded.")
    if not np.isfinite(a).all():
        raise MediaError(f"audio {index} of the batch contains NaN or infinite samples.")
    return a
