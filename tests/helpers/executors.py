"""The executor contract, as assertions on the batches of one run: every executor's output must pass them."""

from __future__ import annotations

import numpy as np


def assert_executor_contract(batches, files, skipped: dict[str, str] | None = None) -> None:
    """``batches``: what ``executor.run(encoder, files, opts)`` yielded. Every file comes back in exactly one batch,
    embedded or skipped with a one-line reason (``skipped``: the expected {path: reason fragment}); each embedded
    file's tracks hold one unit vector per offset, and text tracks one snippet per item."""
    done = [str(e.file.path) for embedded, _ in batches for e in embedded]
    bad = {str(s.path): s.reason for _, skips in batches for s in skips}
    assert len(done) == len(set(done)) and not set(done) & set(bad)
    assert sorted(done + list(bad)) == sorted(str(f.path) for f in files)
    assert all(reason and "\n" not in reason for reason in bad.values())
    for path, fragment in (skipped or {}).items():
        assert fragment in bad.get(path, ""), (path, bad.get(path))
    for embedded, _ in batches:
        for e in embedded:
            assert e.tracks and e.n_vectors == sum(len(t.offsets) for t in e.tracks.values())
            for track, items in e.tracks.items():
                vectors = np.asarray(items.vectors)
                assert vectors.shape[0] == len(items.offsets) > 0, (e.file.path, track)
                np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
                if items.snippets is not None:
                    assert len(items.snippets) == len(items.offsets)
