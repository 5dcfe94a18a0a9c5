"""``auto``: pretrained pair when cached or downloadable, else builtin — decided without loading anything."""

from __future__ import annotations

import http.server
import threading

import pytest

from xsearch.encoders import _hub, auto
from xsearch.encoders.registry import DEFAULT_PAIR


@pytest.fixture(autouse=True)
def _empty_hf_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "hf-home"


def _fake_cached(hub_cache, repo, filename, commit="0123456789abcdef0123456789abcdef01234567"):
    """Place a small fake file where huggingface_hub's cache layout keeps ``repo/filename``."""
    repo_dir = hub_cache / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    path = repo_dir / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not real weights")
    return path


def _cache_whole_pair(hub_cache, clip_file="open_clip_model.safetensors", clap_weights="model.safetensors"):
    _fake_cached(hub_cache, auto.OPENCLIP_REPO, clip_file)
    for name in ("config.json", "preprocessor_config.json", clap_weights, "tokenizer.json"):
        _fake_cached(hub_cache, auto.CLAP_REPO, name)


def test_offline_and_nothing_cached_picks_builtin_with_the_reason(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec, reason = auto.resolve_auto()
    assert spec == "builtin"
    assert reason.startswith("builtin:") and "HF_HUB_OFFLINE=1" in reason and "not cached" in reason
    assert "\n" not in reason


def test_cached_pair_is_picked_offline_without_loading_it(monkeypatch, _empty_hf_home):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _cache_whole_pair(_empty_hf_home / "hub")  # fake bytes: loading them would fail
    spec, reason = auto.resolve_auto()
    assert spec == DEFAULT_PAIR and "cache" in reason


def test_hf_hub_cache_and_the_other_file_names_count_too(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    _cache_whole_pair(tmp_path / "elsewhere", clip_file="open_clip_pytorch_model.bin", clap_weights="pytorch_model.bin")
    assert auto.resolve_auto()[0] == DEFAULT_PAIR


def test_half_a_pair_is_not_enough(monkeypatch, _empty_hf_home):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_cached(_empty_hf_home / "hub", auto.OPENCLIP_REPO, "open_clip_model.safetensors")
    spec, reason = auto.resolve_auto()
    assert spec == "builtin" and auto.CLAP_REPO in reason
    assert auto.missing_pair_files()[0].startswith(auto.CLAP_REPO)


def test_online_decision_follows_the_probe(monkeypatch):
    monkeypatch.setattr(_hub, "hub_reachable", lambda timeout_s=2.0: False)
    spec, reason = auto.resolve_auto()
    assert spec == "builtin" and "did not answer" in reason
    monkeypatch.setattr(_hub, "hub_reachable", lambda timeout_s=2.0: True)
    spec, reason = auto.resolve_auto()
    assert spec == DEFAULT_PAIR and "downloaded" in reason


def test_probe_is_bounded_and_sees_a_live_endpoint(monkeypatch):
    import time

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    start = time.monotonic()
    assert _hub.hub_reachable(1.0) is False
    assert time.monotonic() - start < 2.0

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)  # any HTTP answer means the hub is there
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert _hub.hub_reachable(2.0) is True
    finally:
        server.shutdown()
        server.server_close()


def test_expected_paths_match_open_clip_3_3():
    from xsearch.encoders.openclip import pretrained_hub_files
    from xsearch.encoders.registry import parse_spec

    arch, tag = parse_spec(DEFAULT_PAIR).part("openclip").args
    assert pretrained_hub_files(arch, tag) == (auto.OPENCLIP_REPO, list(auto.OPENCLIP_FILES))
    assert parse_spec(DEFAULT_PAIR).part("clap").args == (auto.CLAP_REPO,)
