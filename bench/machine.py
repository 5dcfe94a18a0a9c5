"""What the benchmarks ran on: CPU, cores, load, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: str = "cpu") -> dict:
    """CPU model, usable cores, load, and the versions of the libraries being measured."""
    import faiss
    import numpy
    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {
        "cpu": _cpu_model(),
        "cores": cores,
        "load_average": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "faiss": faiss.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "numpy": numpy.__version__,
        "hnswlib": _version("hnswlib"),
        "usearch": _version("usearch"),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def to_markdown(info: dict) -> str:
    load = info.get("load_average")
    return "\n".join([
        (f"- CPU: {info['cpu']} ({info['cores']} usable cores), load average at start: "
         f"{', '.join(map(str, load)) if load else 'n/a'}"),
        (f"- Python {info['python']}, torch {info['torch']} ({info['torch_threads']} threads), "
         f"faiss {info['faiss']} ({info['faiss_omp_threads']} OpenMP threads), numpy {info['numpy']}"),
        f"- peers: hnswlib {info['hnswlib'] or 'not installed'}, usearch {info['usearch'] or 'not installed'}",
        f"- device: {info['device']}" + (f" ({info['gpu']})" if info.get("gpu") else ""),
    ])
