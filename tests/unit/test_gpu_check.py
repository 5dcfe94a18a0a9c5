"""bench/gpu.sh's checks pass their own dry run on a CPU (the GPU run itself needs a GPU machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_on_cpu():
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry-run", "--vectors", "3000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = [line for line in proc.stdout.splitlines() if line.startswith("check ")]
    assert len(checks) == 4 and all(line.endswith("ok") for line in checks), proc.stdout
    assert "all within tolerance (dry run)" in proc.stdout


def test_gpu_sh_refuses_unknown_arguments():
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--now"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: bench/gpu.sh [--dry-run]" in proc.stderr
