"""The executor registry and the contract every executor keeps (the ray executor's full runs, compared with the
local one, are in test_executor_ray.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.executors import assert_executor_contract
from xsearch.core.errors import UsageError
from xsearch.engine.executors import EXECUTORS, make_executor
from xsearch.engine.executors.base import Executor


def _made(name: str, **options):
    try:
        return make_executor(name, **options)
    except UsageError as e:
        if e.code == "executor.unavailable":
            pytest.skip(str(e))
        raise


@pytest.mark.parametrize("name", list(EXECUTORS))
def test_every_executor_is_made_by_name_and_keeps_the_protocol(name):
    from xsearch.media.types import DecodeOptions

    executor = _made(name, workers=0, files_per_batch=4)
    assert isinstance(executor, Executor) and executor.name == name
    assert list(executor.run(None, [], DecodeOptions())) == []  # no work: no batch, nothing started
    with pytest.raises(UsageError) as e:
        make_executor(name, no_such_option=1)
    assert e.value.code == "executor.bad_option"


def test_an_unknown_executor_names_the_choices():
    with pytest.raises(UsageError) as e:
        make_executor("spark")
    assert e.value.code == "executor.unknown" and "local" in e.value.params["choices"]


def test_the_local_executor_keeps_the_contract(tmp_path: Path):
    from tests.helpers.media import noise_image, png_bytes
    from xsearch.encoders.registry import load_encoder
    from xsearch.engine.embed import decode_options
    from xsearch.media import discover

    (tmp_path / "a.txt").write_text("a red circle on the left\n\nand a second passage")
    (tmp_path / "b.txt").write_text("blue squares")
    good = png_bytes(noise_image())
    (tmp_path / "c.png").write_bytes(good)
    (tmp_path / "d.png").write_bytes(good[: len(good) // 2])
    files = sorted((f for f in discover(tmp_path) if hasattr(f, "modality")), key=lambda f: str(f.path))
    encoder = load_encoder("builtin", "cpu")
    batches = list(_made("local", workers=0, files_per_batch=2).run(encoder, files, decode_options(encoder)))
    assert len(batches) == 2
    assert_executor_contract(batches, files, {str(tmp_path / "d.png"): ""})


class _StallsAfterOneBatch:
    """The local executor, then the cluster lost after its first batch (what the ray executor's watchdog raises)."""

    name = "stalls"

    def __init__(self, workers: int = 0, files_per_batch: int = 2):
        from xsearch.engine.executors.local import LocalExecutor

        self.inner = LocalExecutor(0, files_per_batch)

    def run(self, encoder, files, opts):
        from xsearch.core.errors import XsearchError

        batches = self.inner.run(encoder, files, opts)
        yield next(batches)
        raise XsearchError("the run made no progress", code="executor.stalled")


def test_a_stalled_run_keeps_the_files_embedded_before_it_and_a_rerun_adds_the_rest(tmp_path: Path, monkeypatch):
    from xsearch.core.errors import XsearchError
    from xsearch.engine import Engine, executors
    from xsearch.index import open_store
    from xsearch.world import make_world

    make_world(tmp_path / "w", 3, seed=3)
    root = tmp_path / "w" / "image"
    total = len(list(root.iterdir()))
    monkeypatch.setitem(executors.EXECUTORS, "stalls", f"{__name__}:_StallsAfterOneBatch")
    col = tmp_path / "col"
    with pytest.raises(XsearchError) as e:
        Engine(col, model="builtin").index_folder(root, executor="stalls", files_per_batch=2)
    assert e.value.code == "executor.stalled"
    with open_store(str(col)) as s:
        assert s.file_count("image") == 2  # the first batch, committed although the run failed
    report = Engine(col).index_folder(root, workers=0)
    assert (report.added, report.unchanged) == (total - 2, 2)
