"""Writing a world to disk (make_world) and the `xsearch world make` command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from PIL import Image
from typer.testing import CliRunner

from xsearch.cli.main import app
from xsearch.world import (
    HELD_OUT,
    WorldError,
    caption_attributes,
    is_world,
    make_world,
    render_audio,
    render_image,
    sample_groups,
    world_info,
)


def tree_digest(root) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("w") / "world", 24, seed=2, workers=1)


def test_layout_and_manifest(world):
    root = world.parent
    assert world.name == "manifest.jsonl" and is_world(root)
    records = [json.loads(line) for line in world.read_text(encoding="utf-8").splitlines()]
    groups = sample_groups(24, 2)
    assert [r["group"] for r in records] == [g.id for g in groups] == [f"g{i:06d}" for i in range(24)]
    for record, group in zip(records, groups):
        assert set(record) == {"group", "split", "image", "audio", "text", "text_file", "attributes"}
        assert record["split"] == group.split and record["attributes"] == group.attributes
        assert record["image"] == f"image/{group.id}.png" and record["audio"] == f"audio/{group.id}.wav"
        assert len(record["text"]) == 5
        assert all(caption_attributes(t) == group.attributes for t in record["text"])
        assert (root / record["text_file"]).read_text(encoding="utf-8") == record["text"][0] + "\n"
        with Image.open(root / record["image"]) as im:
            assert im.format == "PNG" and im.size == (128, 128)
            assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(render_image(group)))
        audio, sr = soundfile.read(root / record["audio"], dtype="float32")
        assert sr == 16000 and np.abs(audio - render_audio(group)).max() < 1e-4
        if record["split"] == "test":
            assert (group.attributes["colour"], group.attributes["shape"]) in HELD_OUT
    info = world_info(root)
    assert info["n"] == 24 and info["seed"] == 2 and sum(info["splits"].values()) == 24
    assert sorted(os.listdir(root)) == ["audio", "image", "manifest.jsonl", "text", "world.json"]
    assert not [p for p in os.listdir(root.parent) if p.startswith(".")]  # no staging folders left behind


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    serial = make_world(tmp_path / "a", 64, seed=1, workers=1).parent
    parallel = make_world(tmp_path / "b", 64, seed=1, workers=2).parent
    other_seed = make_world(tmp_path / "c", 64, seed=5, workers=1).parent
    assert tree_digest(serial) == tree_digest(parallel)
    assert len(tree_digest(serial)) == 3 * 64 + 2
    differing = {k for k, v in tree_digest(other_seed).items() if tree_digest(serial).get(k) != v}
    assert len(differing) > 150


def test_refuses_a_folder_that_is_not_a_world(tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"not really")
    with pytest.raises(WorldError, match="not empty and is not a generated world"):
        make_world(target, 3)
    assert os.listdir(target) == ["holiday.jpg"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(WorldError, match="not a folder"):
        make_world(a_file, 3)


def test_overwrites_a_previous_world_only_when_asked(tmp_path):
    target = tmp_path / "w"
    target.mkdir()  # an empty folder is fine
    make_world(target, 5, workers=1)
    with pytest.raises(WorldError, match="already holds a generated world"):
        make_world(target, 3, workers=1)
    assert world_info(target)["n"] == 5
    make_world(target, 3, seed=4, overwrite=True, workers=1)
    assert world_info(target)["n"] == 3 and len(os.listdir(target / "image")) == 3
    (target / "notes.txt").write_text("mine")
    with pytest.raises(WorldError, match="not part of the world"):
        make_world(target, 3, overwrite=True, workers=1)
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith(".")) == []


def test_progress_is_reported(tmp_path):
    calls = []
    make_world(tmp_path / "w", 4, workers=1, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cli_make_writes_a_world(tmp_path):
    target = tmp_path / "cli world"
    result = CliRunner().invoke(app, ["world", "make", str(target), "--n", "6", "--seed", "3", "--captions", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["groups"] == 6 and sum(summary["splits"].values()) == 6 and summary["bytes"] > 6 * 64000
    records = [json.loads(line) for line in (target / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(len(r["text"]) == 2 for r in records)
    result = CliRunner().invoke(app, ["world", "make", str(tmp_path / "w2"), "-n", "2"])
    assert result.exit_code == 0 and result.stdout.startswith("wrote 2 groups (train ")


def test_cli_refuses_a_non_world_folder_in_one_line(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    proc = subprocess.run(
        [sys.executable, "-c", "from xsearch.cli.main import run; run()", "world", "make", str(tmp_path), "-n", "2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "not a generated world" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["keep.txt"]
