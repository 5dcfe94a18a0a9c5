"""Real servers for the tests: a Milvus standalone server (the PyPI package ``milvus``, its own venv) and a
multi-node Ray cluster on loopback (``ray.cluster_utils.Cluster``).

Milvus, in this order:

- ``$XSEARCH_TEST_MILVUS_URI`` (``HOST:PORT``) set: that server is used as it is;
- else the ``milvus`` package's venv (``$XSEARCH_TEST_MILVUS_VENV``, else ``.venv-milvus`` in the repository — ``make
  milvus-venv`` creates it) starts ``milvus-server --data TMP`` once per test session, in a process group of its own
  (its child ``milvus run standalone`` outlives a plain kill of the wrapper: the group is stopped), bounded by
  ``MILVUS_START_S``;
- else, with ``XSEARCH_TEST_MILVUS_INSTALL=1``, the venv is created first (``pip install milvus==2.3.5``);
- else the server tests skip with one reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MILVUS_PACKAGE = "milvus==2.3.5"
MILVUS_START_S = 300.0  # ~45 s on an idle 2-core machine; >150 s seen with the 2 cores at load 15
MILVUS_PORT = 19530


@dataclass
class MilvusServer:
    address: str  # HOST:PORT
    process: subprocess.Popen | None = None
    log: Path | None = None

    def stop(self) -> None:
        """Stop the server's whole process group (the wrapper and ``milvus run standalone``)."""
        proc = self.process
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 40.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:  # the wrapper exits first; `milvus run standalone` takes longer
                proc.poll()
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.5)


def milvus_venv() -> Path:
    return Path(os.environ.get("XSEARCH_TEST_MILVUS_VENV") or ROOT / ".venv-milvus")


def install_milvus(venv: Path) -> str | None:
    """Create ``venv`` with the milvus package; None on success, else why not."""
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", MILVUS_PACKAGE], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"could not install {MILVUS_PACKAGE} into {venv}: {str(exc)[:200]}"
    return None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def server_version(address: str, timeout: float = 5.0, token: str = "") -> str:
    from pymilvus import MilvusClient

    client = MilvusClient(f"http://{address}", token=token, timeout=timeout)
    try:
        return client.get_server_version()
    finally:
        client.close()


def start_milvus(data_dir: Path) -> tuple[MilvusServer | None, str]:
    """(the server, "") or (None, why there is none)."""
    uri = os.environ.get("XSEARCH_TEST_MILVUS_URI", "").strip()
    if uri:
        address = uri.removeprefix("milvus://").removeprefix("http://").split("/")[0]
        try:
            server_version(address)
        except Exception as exc:  # noqa: BLE001
            return None, f"XSEARCH_TEST_MILVUS_URI={uri} does not answer ({str(exc)[:200]})"
        return MilvusServer(address), ""
    venv = milvus_venv()
    binary = venv / "bin" / "milvus-server"
    if not binary.exists():
        if os.environ.get("XSEARCH_TEST_MILVUS_INSTALL") != "1":
            return None, (f"no Milvus server: set XSEARCH_TEST_MILVUS_URI, or run `make milvus-venv` ({venv} has no "
                          "milvus-server), or set XSEARCH_TEST_MILVUS_INSTALL=1")
        why = install_milvus(venv)
        if why:
            return None, why
    if _port_open(MILVUS_PORT):
        return None, f"port {MILVUS_PORT} is taken: set XSEARCH_TEST_MILVUS_URI to use the server there"
    return launch_milvus(binary, data_dir, MILVUS_PORT)


def launch_milvus(binary: Path, data_dir: Path, port: int, *, auth: bool = False,
                  etcd_ports: tuple[int, int] | None = None) -> tuple[MilvusServer | None, str]:
    """Start ``milvus-server`` with its proxy on ``port`` and wait until it answers. The wrapper takes every port as
    where to start looking for a free one (its other ports too), so ``port`` must be clear of the ones it shifts.
    ``auth``: authentication on (user root, password Milvus). ``etcd_ports`` (client, peer): a second server on
    this host needs them, since the embedded etcd's peer port is fixed at 2380 unless ETCD_CONFIG_PATH names a
    config (Milvus reads its settings from the environment too)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "milvus-server.log"
    args = [str(binary), "--data", str(data_dir / "data"), "--proxy-port", str(port)]
    env = dict(os.environ)
    if auth:
        args += ["--authorization-enabled", "true"]
    if etcd_ports:
        client, peer = etcd_ports
        etcd_config = data_dir / "embed-etcd.yaml"
        etcd_config.write_text(f"listen-client-urls: http://localhost:{client}\n"
                               f"advertise-client-urls: http://localhost:{client}\n"
                               f"listen-peer-urls: http://localhost:{peer}\n"
                               f"initial-advertise-peer-urls: http://localhost:{peer}\n"
                               f"initial-cluster: default=http://localhost:{peer}\n"
                               f"data-dir: {data_dir / 'data' / 'etcd.data'}\n")
        args += ["--etcd-port", str(client)]
        env["ETCD_CONFIG_PATH"] = str(etcd_config)
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    server = MilvusServer(f"127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + MILVUS_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-400:]
            server.stop()
            return None, f"milvus-server exited with {proc.returncode}: {tail}"
        if _port_open(port):
            try:
                server_version(server.address, timeout=3.0, token="root:Milvus" if auth else "")
                return server, ""
            except Exception:  # noqa: BLE001, S110 - not ready yet
                pass
        time.sleep(1.0)
    server.stop()
    return None, f"milvus-server did not answer within {MILVUS_START_S:.0f} s (log: {log})"


class RayCluster:
    """A real multi-node Ray cluster on loopback: a head and ``workers`` worker nodes (each its own raylet), this
    process connected as the driver. ``ray start --address`` on one host rewrites 127.0.0.1 to the host's address;
    ``ray.cluster_utils.Cluster`` keeps everything on loopback."""

    def __init__(self, workers: int = 1, cpus_per_node: float = 1):
        import logging

        import ray
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(initialize_head=True,
                               head_node_args={"num_cpus": cpus_per_node, "include_dashboard": False})
        self.workers = [self.cluster.add_node(num_cpus=cpus_per_node) for _ in range(workers)]
        self.cluster.wait_for_nodes()
        ray.init(address=self.cluster.address, logging_level=logging.ERROR, log_to_driver=False)

    def nodes_alive(self) -> int:
        import ray

        return sum(1 for n in ray.nodes() if n.get("Alive"))

    def kill(self, node) -> None:
        """Kill a worker node's raylet and processes at once (no graceful drain): a machine that died."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        try:
            self.cluster.shutdown()
        except ValueError:  # a Ray Data thread of a run that was given up on re-connected the driver: once more
            time.sleep(1.0)
            ray.shutdown()
            self.cluster.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def xsearch_serve(args: Sequence[str], home: Path, start_s: float = 90.0) -> Iterator[str]:
    """``xsearch serve ARGS --port P`` in a process of its own (``XSEARCH_HOME=home``, offline): its URL once
    ``/api/collections`` answers; stopped afterwards, and its output must hold no traceback."""
    import pytest

    port = free_port()
    env = {**os.environ, "XSEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_HOME": str(home / "hf")}
    proc = subprocess.Popen([sys.executable, "-m", "xsearch.cli.main", "serve", *map(str, args), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + start_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/collections", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"xsearch serve did not start:\n{proc.stdout.read()}")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert "Traceback" not in out, out
