"""``auto``: the pretrained CLIP + CLAP pair when its weights can be had, else the builtin model.

"Can be had" = every file the pair loads is in the local Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``,
read now, checked with ``try_to_load_from_cache``, nothing is loaded), or the hub answers within a couple
of seconds and ``HF_HUB_OFFLINE`` is not set (then the first use downloads them, with progress).
"""

from __future__ import annotations

from xsearch.encoders import _hub
from xsearch.encoders.specs import DEFAULT_PAIR

# Where open_clip 3.3.0 keeps ViT-B-32 laion2b_s34b_b79k: its pretrained cfg has
# hf_hub='laion/CLIP-ViT-B-32-laion2B-s34B-b79K/' (no file name → open_clip_pytorch_model.bin, and it
# tries the safetensors twin open_clip_model.safetensors first). Checked against open_clip in the tests.
OPENCLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
OPENCLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CLAP_REPO = "laion/clap-htsat-unfused"
# Each inner tuple is one requirement; any one of its alternatives satisfies it.
CLAP_FILES = (
    ("config.json",),
    ("preprocessor_config.json", "processor_config.json"),
    ("model.safetensors", "pytorch_model.bin"),
    ("tokenizer.json", "vocab.json"),
)
PROBE_TIMEOUT_S = 2.0


def missing_pair_files() -> list[str]:
    """The pair's weight/config files that are not in the local hub cache (``repo/file`` of the first choice)."""
    needs = [(OPENCLIP_REPO, OPENCLIP_FILES)] + [(CLAP_REPO, alternatives) for alternatives in CLAP_FILES]
    return [
        f"{repo}/{alternatives[0]}"
        for repo, alternatives in needs
        if not any(_hub.cached_file(repo, name) is not None for name in alternatives)
    ]


def resolve_auto(probe_timeout_s: float = PROBE_TIMEOUT_S) -> tuple[str, str]:
    """(spec, one-line reason): ``DEFAULT_PAIR`` when its weights are cached or downloadable, else ``builtin``."""
    missing = missing_pair_files()
    if not missing:
        return (
            DEFAULT_PAIR,
            f"pretrained pair: its weights are in the local Hugging Face cache ({_hub.hub_cache_dir()}).",
        )
    what = "the pretrained pair is not cached" if len(missing) == 1 + len(CLAP_FILES) else f"{missing[0]} is not cached"
    if _hub.offline():
        return "builtin", f"builtin: no network and {what} ({_hub.offline_reason()})."
    endpoint = _hub.hub_endpoint()
    if not _hub.hub_reachable(probe_timeout_s):
        return "builtin", f"builtin: {endpoint} did not answer within {probe_timeout_s:g} s and {what}."
    return DEFAULT_PAIR, (
        f"pretrained pair: {what}; it will be downloaded from {endpoint} (about 1.2 GB) into {_hub.hub_cache_dir()}."
    )
