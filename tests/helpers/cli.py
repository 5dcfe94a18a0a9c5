"""Assertions on what a CLI run printed."""

from __future__ import annotations


def one_line_error(r, code: int, *needles: str) -> str:
    """``r`` (a CliResult) failed with exit ``code`` and one ``error: …`` line on stderr holding every needle."""
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
