"""A collection in a hostile world: killed writers and their children, symlinked and special files, forged catalog
rows, swapped vector files, read-only folders, full disks, damaged catalogs, unreadable files."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.index import unit_rows
from xsearch.core.errors import CollectionError, CollectionLockedError
from xsearch.index.local import Catalog, Collection, VectorIndex

DIM = 16
MODEL = "builtin:test-v1"
REPO = Path(__file__).resolve().parents[1]


def unit(rows: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return unit_rows(rows, dim, seed)


def make(path, **kw):
    kw.setdefault("dims", {"image": DIM, "audio": DIM})
    return Collection.create(path, model_id=MODEL, model_spec="builtin", **kw)


def add_file(coll, path, vecs, modality="image"):
    fid = coll.catalog.upsert_file(path, modality=modality, size=len(vecs), mtime_ns=1, model_id=coll.model_id)
    return fid, coll.add(modality, fid, list(range(len(vecs))), vecs)


def filled(root: Path, n_files: int = 3) -> Path:
    with make(root) as coll:
        for i in range(n_files):
            add_file(coll, f"/img{i}.jpg", unit(2, seed=i))
            add_file(coll, f"/snd{i}.wav", unit(3, seed=100 + i), modality="audio")
    return root


def one_line(exc: BaseException) -> bool:
    return "\n" not in str(exc)


def vector_file(root: Path, modality: str = "image") -> Path:
    with Collection.open(root) as coll:
        return root / coll.catalog.vector_files()[modality]


def env_for(tmp_path: Path) -> dict:
    return {**os.environ, "XSEARCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}


def xsearch(*args, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xsearch.cli.main", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


# -- 1. a killed writer's children never keep the lock ------------------------------------------------------


def test_children_of_a_killed_writer_do_not_keep_the_lock(tmp_path):
    root = tmp_path / "c"
    make(root).close()
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from xsearch.index.local import Collection
        col = Collection.open({str(root)!r}, writer=True)
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        open({str(pid_file)!r}, "w").write(str(child))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    child = int(pid_file.read_text())
    try:
        assert not _gone(child)  # the forked child outlives its killed parent...
        Collection.open(root, writer=True, wait_s=5).close()  # ...and still the lock is free
    finally:
        _kill(child)


def _write_pid_then_hang(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


def test_decode_workers_die_with_their_parent(tmp_path):
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8), "red").save(img)
    pid_file = tmp_path / "worker.pid"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from tests.hostile.test_hostile_index import _write_pid_then_hang
        from xsearch.media import discover, iter_decoded
        from xsearch.media.types import MediaFile
        files = [f for f in discover({str(img)!r}) if isinstance(f, MediaFile)]
        for batch in iter_decoded(files, workers=1, worker_init=lambda: _write_pid_then_hang({str(pid_file)!r})):
            pass
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    worker = None
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while not _gone(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(worker), "the decode worker outlived its parent"
    finally:
        proc.kill()
        proc.wait()
        if worker:
            _kill(worker)


def test_worker_init_closes_inherited_lock_fds(tmp_path):
    from xsearch.index import locks

    root = tmp_path / "c"
    before = set(locks.held_lock_fds())  # other tests' stores may still be open in this process
    with make(root):
        held = set(locks.held_lock_fds()) - before
        assert len(held) == 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the fork hook already closed the copies; an explicit call is harmless
            locks.close_inherited_lock_fds()
            still_open = [fd for fd in held if _fd_open(fd)]
            os.write(write, json.dumps(still_open).encode())
            os._exit(0)
        os.close(write)
        still_open = json.loads(os.read(read, 1000))
        os.waitpid(pid, 0)
        os.close(read)
        assert still_open == []
        with pytest.raises(CollectionLockedError):  # closing the child's copies did not release ours
            Collection.open(root, writer=True)


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_lock_held_after_its_writer_died_says_so(tmp_path):
    root = tmp_path / "c"
    holder = make(root)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "lock").write_text(f"{dead.pid}\n")  # what a dead writer's surviving child leaves behind
    with pytest.raises(CollectionLockedError, match=rf"pid {dead.pid}\) is no longer running") as info:
        Collection.open(root, writer=True)
    assert info.value.params["holder_pid"] == dead.pid and info.value.params["holder_alive"] is False
    assert info.value.code == "collection.locked" and one_line(info.value)
    holder.close()
    holder = make(tmp_path / "d")
    with pytest.raises(CollectionLockedError, match="being written by another process") as info:
        Collection.open(tmp_path / "d", writer=True)
    assert info.value.params["holder_pid"] == os.getpid() and info.value.params["holder_alive"] is True
    holder.close()


@pytest.mark.slow
def test_sigkill_of_index_with_decode_workers_leaves_no_lock(tmp_path):
    world, col = tmp_path / "w", tmp_path / "col"
    env = env_for(tmp_path)
    made = xsearch("world", "make", world, "--n", 100, "--seed", 1, env=env)
    assert made.returncode == 0, made.stderr
    cmd = [sys.executable, "-m", "xsearch.cli.main", "index", str(world), "-c", str(col), "--model", "builtin",
           "--workers", "2", "--batch-files", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while not workers:  # kill it while its decode workers run
            assert proc.poll() is None and time.monotonic() < deadline, "index finished before workers started"
            workers = _children(proc.pid)
            time.sleep(0.01)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while True:
            again = subprocess.run(cmd[:-4] + ["--workers", "0", "--json"], env=env, capture_output=True,
                                   text=True, timeout=300)
            if again.returncode != 3 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["added"] + json.loads(again.stdout)["unchanged"] == 300
    finally:
        proc.kill()
        proc.wait()
        for pid in workers + _processes_mentioning(str(col)):  # orphans, if the fix ever regresses
            _kill(pid)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            pass
    return [pid for pid in found if pid != os.getpid()]


# -- 8. symbolic links and special files -------------------------------------------------------------------


def test_lock_symlink_is_refused_and_its_target_untouched(tmp_path):
    root = filled(tmp_path / "c")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (root / "lock").unlink()
    (root / "lock").symlink_to(victim)
    for attempt in (lambda: Collection.open(root, writer=True), lambda: Collection.delete(root)):
        with pytest.raises(CollectionError, match="symbolic link") as info:
            attempt()
        assert info.value.code == "collection.unsafe_file" and one_line(info.value)
    assert victim.read_text() == "precious"
    with Collection.open(root) as reader:  # readers take no lock
        assert reader.catalog.counts()["image"]["files"] == 3


def test_lock_directory_is_one_clear_error(tmp_path):
    root = filled(tmp_path / "c")
    (root / "lock").unlink()
    (root / "lock").mkdir()
    with pytest.raises(CollectionError, match="is a directory") as info:
        Collection.open(root, writer=True)
    assert info.value.code == "collection.unsafe_file" and info.value.params["path"] == str(root / "lock")


def test_catalog_symlink_into_another_collection_is_refused(tmp_path):
    other = filled(tmp_path / "other")
    before = (other / "catalog.sqlite").read_bytes()
    root = filled(tmp_path / "c", n_files=1)
    (root / "catalog.sqlite").unlink()
    (root / "catalog.sqlite").symlink_to(other / "catalog.sqlite")
    for writer in (False, True):
        with pytest.raises(CollectionError, match="symbolic link") as info:
            Collection.open(root, writer=writer)
        assert info.value.code == "collection.unsafe_file" and one_line(info.value)
    assert (other / "catalog.sqlite").read_bytes() == before
    assert not (other / "catalog.sqlite-wal").exists()


@pytest.mark.parametrize("name", ["catalog.sqlite-wal", "catalog.sqlite-shm"])
def test_catalog_wal_and_shm_symlinks_are_refused(tmp_path, name):
    root = filled(tmp_path / "c")
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (root / name).symlink_to(victim)
    with pytest.raises(CollectionError, match="symbolic link") as info:
        Collection.open(root)
    assert info.value.code == "collection.unsafe_file"
    assert victim.read_bytes() == b"precious"


def test_manifest_and_vector_file_symlinks_are_refused(tmp_path):
    other = filled(tmp_path / "other")
    root = filled(tmp_path / "c")
    mine = vector_file(root)
    mine.unlink()
    mine.symlink_to(vector_file(other))
    with Collection.open(root) as reader:
        with pytest.raises(CollectionError, match="symbolic link") as info:
            reader.search("image", unit(1), 1)
    assert info.value.code == "collection.unsafe_file"
    (root / "manifest.json").unlink()
    (root / "manifest.json").symlink_to(other / "manifest.json")
    with pytest.raises(CollectionError, match="symbolic link") as info:
        Collection.open(root)
    assert info.value.code == "collection.unsafe_file"


def test_fifo_in_place_of_a_vector_file_does_not_hang(tmp_path):
    root = filled(tmp_path / "c")
    path = vector_file(root)
    path.unlink()
    os.mkfifo(path)
    with Collection.open(root) as reader:
        with pytest.raises(CollectionError, match="not a regular file") as info:
            reader.search("image", unit(1), 1)
    assert info.value.code == "collection.unsafe_file"


# -- 9. vector file names from the catalog are confined ---------------------------------------------------


@pytest.mark.parametrize("forged", ["../victim/image.000001.faiss", "ABSOLUTE", "audio.000001.faiss",
                                    "image.1.faiss", "image.000001.faiss\n", "image.000001.faiss/.."])
def test_forged_vector_file_names_are_damage(tmp_path, forged):
    victim = filled(tmp_path / "victim")
    target = vector_file(victim)
    if forged == "ABSOLUTE":
        forged = str(target)
    root = filled(tmp_path / "c")
    conn = sqlite3.connect(root / "catalog.sqlite")
    conn.execute("UPDATE vector_files SET file = ? WHERE modality = 'image'", (forged,))
    conn.commit()
    conn.close()
    with Collection.open(root) as reader:
        with pytest.raises(CollectionError, match="vector file") as info:
            reader.search("image", unit(1), 1)
    assert info.value.code == "collection.damaged" and one_line(info.value)
    with pytest.raises(CollectionError) as info:
        Collection.open(root, writer=True)
    assert info.value.code == "collection.damaged"
    assert target.exists()  # never read as ours, never deleted by our commit
    with Collection.open(victim) as reader:
        assert reader.index("image").ntotal == 6


def test_set_vector_file_refuses_a_path(tmp_path):
    with make(tmp_path / "c") as coll, pytest.raises(ValueError):
        coll.catalog.set_vector_file("image", "../x/image.000001.faiss")


# -- 11. a valid vector file of the wrong modality or generation ------------------------------------------


def test_vector_file_header_records_the_modality(tmp_path):
    index = VectorIndex.create(DIM, "Flat", use_gpu=False)
    index.add([1, 2], unit(2))
    index.save(tmp_path / "a.faiss", modality="audio")
    assert VectorIndex.load(tmp_path / "a.faiss").modality == "audio"
    index.save(tmp_path / "old.faiss")  # files written before the header named a modality still load
    old = VectorIndex.load(tmp_path / "old.faiss")
    assert old.modality is None and old.ntotal == 2
    root = filled(tmp_path / "c")
    assert VectorIndex.load(vector_file(root, "audio")).modality == "audio"


def test_wrong_modality_file_is_caught_by_readers_and_repaired_by_writers(tmp_path):
    root = filled(tmp_path / "c")
    shutil.copyfile(vector_file(root, "audio"), vector_file(root, "image"))
    with Collection.open(root) as reader:
        assert reader.index("audio").ntotal == 9
        with pytest.raises(CollectionError, match="holds audio vectors, not image") as info:
            reader.search("image", unit(1), 1)
    assert info.value.code == "collection.vectors_damaged" and one_line(info.value)
    with Collection.open(root, writer=True) as coll:
        report = coll.repair_report
        assert sorted(report.files_to_reembed) == ["/img0.jpg", "/img1.jpg", "/img2.jpg"]
        assert "image" in report.vector_files_replaced
    with Collection.open(root) as reader:
        assert reader.index("image").ntotal == 0 and reader.index("image").modality == "image"
        assert reader.index("audio").ntotal == 9


def test_old_wrong_modality_file_without_header_modality_is_caught_by_its_ids(tmp_path):
    root = filled(tmp_path / "c")
    VectorIndex.load(vector_file(root, "audio")).save(vector_file(root, "image"))  # no modality in the header
    with Collection.open(root) as reader:
        with pytest.raises(CollectionError, match="ids differ") as info:
            reader.search("image", unit(1), 1)
    assert info.value.code == "collection.vectors_damaged"
    with Collection.open(root, writer=True) as coll:
        assert coll.repair_report.orphan_vectors_dropped == {"image": 9}
        assert len(coll.repair_report.files_to_reembed) == 3


def test_older_generation_file_is_caught_by_readers_and_repaired_by_writers(tmp_path):
    root = filled(tmp_path / "c")
    old = tmp_path / "old.faiss"
    shutil.copyfile(vector_file(root), old)
    with Collection.open(root, writer=True) as coll:
        add_file(coll, "/new.jpg", unit(4, seed=9))
    shutil.copyfile(old, vector_file(root))
    with Collection.open(root) as reader:
        with pytest.raises(CollectionError, match="ids differ") as info:
            reader.search("image", unit(1), 1)
    assert info.value.code == "collection.vectors_damaged" and one_line(info.value)
    with Collection.open(root, writer=True) as coll:
        assert coll.repair_report.files_to_reembed == ["/new.jpg"]
    with Collection.open(root) as reader:
        assert reader.index("image").ntotal == 6


# -- 18. read-only collections -----------------------------------------------------------------------------


@pytest.fixture
def read_only(monkeypatch):
    """Make os.access say "not writable" for W_OK under the given folders (root ignores chmod in the tests)."""
    folders: list[Path] = []
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and any(Path(path).absolute().is_relative_to(f) for f in folders):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    return lambda folder: folders.append(Path(folder).absolute())


def test_read_only_collection_searches_and_refuses_writers(tmp_path, read_only):
    root = filled(tmp_path / "c")
    assert not (root / "catalog.sqlite-shm").exists() and not (root / "catalog.sqlite-wal").exists()
    read_only(root)
    with Collection.open(root) as reader:
        _, ids = reader.search("image", unit(1, seed=0), 2)
        assert (ids >= 0).all() and reader.catalog.items(ids[0].tolist())
    assert not (root / "catalog.sqlite-shm").exists()  # immutable=1: nothing written next to the catalog
    for attempt in (lambda: Collection.open(root, writer=True), lambda: Collection.delete(root),
                    lambda: make(root / "inner")):
        with pytest.raises(CollectionError, match="read-only") as info:
            attempt()
        assert info.value.code == "collection.read_only" and one_line(info.value)


def test_reader_catalog_is_opened_read_only_by_sqlite(tmp_path):
    root = filled(tmp_path / "c")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    for f in copy.iterdir():
        f.chmod(0o444)
    copy.chmod(0o555)
    try:
        for immutable in (True, False):
            cat = Catalog.open(copy / "catalog.sqlite", readonly=True, immutable=immutable)
            assert len(cat.files()) == 6
            cat._conn.execute("PRAGMA query_only = OFF")
            with pytest.raises(sqlite3.OperationalError, match="readonly"):  # the connection itself is read-only
                cat._conn.execute("DELETE FROM files")
            cat.close()
            if immutable:
                assert not (copy / "catalog.sqlite-shm").exists()
        assert len(Catalog.open(copy / "catalog.sqlite", readonly=True).files()) == 6
    finally:
        copy.chmod(0o755)


def test_real_read_only_mount(tmp_path):
    """Where the test may make a read-only bind mount (root, mount namespaces allowed), do it for real."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    clean = filled(tmp_path / "src" / "clean")
    with make(tmp_path / "src" / "wal") as writer:  # a copy taken while a writer had committed into the WAL
        add_file(writer, "/a.jpg", unit(2, seed=1))
        writer.commit()
        shutil.copytree(tmp_path / "src" / "wal", tmp_path / "src" / "walcopy")
    assert (tmp_path / "src" / "walcopy" / "catalog.sqlite-wal").exists() and clean
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = textwrap.dedent(f"""
        import json
        from xsearch.index.local import Collection
        out = {{}}
        for name in ("clean", "walcopy"):
            root = {str(mnt)!r} + "/" + name
            with Collection.open(root) as reader:
                out[name] = [len(reader.catalog.files()), reader.index("image").ntotal]
            try:
                Collection.open(root, writer=True)
            except Exception as exc:
                out[name].append(exc.code)
        print(json.dumps(out))
    """)
    shell = f"mount --bind {tmp_path / 'src'} {mnt} && mount -o remount,ro,bind {mnt} && {sys.executable} -c \"$0\""
    proc = subprocess.run(["unshare", "-m", "sh", "-c", shell, probe], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "mount" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"no read-only bind mount here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"clean": [6, 6, "collection.read_only"],
                                       "walcopy": [1, 2, "collection.read_only"]}


def test_cli_on_a_read_only_collection(cli, tmp_path, read_only):
    folder = tmp_path / "m"
    folder.mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "a.png")
    col = tmp_path / "col"
    r = cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0")
    assert r.code == 0, r.err
    read_only(col)
    r = cli("search", "red", "-c", col, "--json")
    assert r.code == 0, r.err
    for args in (("index", folder, "-c", col, "--workers", "0"), ("remove", folder / "a.png", "-c", col)):
        r = cli(*args)
        assert r.code == 1 and "read-only" in r.err and r.err.count("\n") == 1 and "rebuild" not in r.err


# -- 19. disk full ----------------------------------------------------------------------------------------


def test_disk_full_while_saving_vectors_is_one_line_and_keeps_the_last_commit(tmp_path, monkeypatch):
    root = filled(tmp_path / "c")
    coll = Collection.open(root, writer=True)
    add_file(coll, "/more.jpg", unit(5, seed=50))

    def full(self, path, **kwargs):
        Path(path).with_name(f".{Path(path).name}.1.tmp").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(VectorIndex, "save", full)
    with pytest.raises(CollectionError, match=f"no space left on the disk holding {root}") as info:
        coll.commit()
    assert info.value.code == "collection.disk_full" and one_line(info.value)
    monkeypatch.undo()
    coll.close()
    with Collection.open(root, writer=True) as coll:
        assert coll.catalog.get_file("/more.jpg") is None and coll.index("image").ntotal == 6
    assert sorted(p.name for p in root.glob("*.faiss")) == ["audio.000001.faiss", "image.000001.faiss"]


def test_disk_full_in_the_catalog_is_one_line_and_keeps_the_last_commit(tmp_path):
    root = filled(tmp_path / "c")
    coll = Collection.open(root, writer=True)
    pages = coll.catalog._conn.execute("PRAGMA page_count").fetchone()[0]
    coll.catalog._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    with pytest.raises(CollectionError, match=f"no space left on the disk holding {root}") as info:
        for i in range(2000):
            add_file(coll, f"/more{i:05d}-{'x' * 200}.jpg", unit(2, seed=i))
        coll.commit()
    assert info.value.code == "collection.disk_full" and one_line(info.value)
    coll.close()
    with Collection.open(root) as reader:
        assert reader.catalog.counts()["image"] == {"files": 3, "items": 6}
        assert reader.index("image").ntotal == 6


# -- 20. damaged catalogs, and rebuilding them -------------------------------------------------------------


def _garble_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) >= 6 * page, len(data)
    # every page after the first two (header + schema) but the last: the files and items tables are surely hit
    start, end = 2 * page, (len(data) // page - 1) * page
    data[start:end] = np.random.default_rng(0).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def big(root: Path) -> Path:
    with make(root) as coll:
        for i in range(150):
            add_file(coll, f"/some/long/folder/name/image-{i:05d}.jpg", unit(2, seed=i))
    return root


def test_garbage_in_the_middle_of_the_catalog_is_a_collection_error(tmp_path):
    root = big(tmp_path / "c")
    _garble_middle(root / "catalog.sqlite")
    with pytest.raises(CollectionError) as info:
        with Collection.open(root) as reader:
            reader.catalog.files()
            reader.catalog.items(range(1, 400))
            reader.catalog.filter_ids("image", path_glob="*.jpg")
    assert info.value.code == "collection.damaged" and one_line(info.value)
    assert info.value.params == {"collection": str(root), "path": str(root / "catalog.sqlite"),
                                 "reason": info.value.params["reason"]}
    with pytest.raises(CollectionError) as info:
        Collection.open(root, writer=True)
    assert info.value.code == "collection.damaged"
    Collection.delete(root)
    assert not Collection.exists(root)
    with make(root) as coll:
        assert coll.catalog.files() == []


@pytest.mark.parametrize("damage", ["catalog deleted", "catalog empty", "catalog garbage", "manifest deleted",
                                    "manifest empty", "manifest garbage"])
def test_damaged_collection_is_damage_for_everyone_and_delete_still_works(tmp_path, damage):
    root = filled(tmp_path / "c")
    target = root / ("catalog.sqlite" if damage.startswith("catalog") else "manifest.json")
    if damage.endswith("deleted"):
        target.unlink()
    elif damage.endswith("empty"):
        target.write_bytes(b"")
    else:
        target.write_bytes(os.urandom(5000))
    for writer in (False, True):
        with pytest.raises(CollectionError) as info:
            Collection.open(root, writer=writer)
        assert info.value.code == "collection.damaged" and one_line(info.value), (writer, info.value)
        if damage == "manifest deleted":  # a lost manifest is damage, named as such: not "no collection"
            assert "lost its manifest" in str(info.value) and info.value.params["reason"] == "manifest missing"
    assert not (root / "catalog.sqlite").exists() or damage != "catalog deleted"  # no silent new catalog
    Collection.delete(root)
    assert sorted(p.name for p in root.iterdir()) == ["lock"]
    with make(root) as coll:  # what the rebuild does next
        assert coll.catalog.files() == []


def test_create_over_the_leftovers_of_a_lost_manifest_starts_clean(tmp_path):
    root = filled(tmp_path / "c")
    (root / "manifest.json").unlink()
    with make(root) as coll:
        assert coll.catalog.files() == [] and coll.index("image").ntotal == 0
        assert coll.repair_report.manifest_lost  # the indexer says it started afresh
    assert not list(root.glob("*.faiss"))
    with make(tmp_path / "fresh") as coll:
        assert not coll.repair_report.manifest_lost


def test_a_catalog_without_a_manifest_while_a_writer_works_is_no_collection_yet(tmp_path):
    root = filled(tmp_path / "c")
    (root / "manifest.json").unlink()
    (root / "lock").write_text(f"{os.getpid()}\n")  # a live writer is creating or rebuilding it
    assert Collection.missing_error(root).code == "collection.missing"
    (root / "lock").write_text("")  # released: the manifest is lost
    assert Collection.missing_error(root).code == "collection.damaged"


@pytest.mark.slow  # ~11 s: five real processes
def test_cli_damaged_catalog_then_rebuild(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for i in range(120):
        Image.new("RGB", (16, 16), (i, 255 - i, 30)).save(folder / f"picture-number-{i:04d}.png")
    col = tmp_path / "col"
    env = env_for(tmp_path)
    base = ["index", folder, "-c", col, "--model", "builtin", "--workers", "0"]
    assert xsearch(*base, env=env).returncode == 0
    _garble_middle(col / "catalog.sqlite")
    r = xsearch(*base, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "damaged" in r.stderr and "--rebuild" in r.stderr
    r = xsearch(*base, "--json", env=env)
    assert json.loads(r.stdout)["error"]["code"] == "collection.damaged"
    r = xsearch(*base, "--rebuild", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 120
    r = xsearch("search", "green", "-c", col, "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["results"]["image"], r.stderr


# -- OSErrors on collection files --------------------------------------------------------------------------


def test_permission_denied_on_collection_files_is_one_line(tmp_path, monkeypatch):
    root = filled(tmp_path / "c")
    real_open = os.open

    def denied(path, flags, *args, **kwargs):
        if str(path).endswith((".faiss", "lock", "manifest.json")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CollectionError, match="permission denied") as info:
        Collection.open(root)  # the manifest
    assert info.value.code == "collection.permission_denied" and one_line(info.value)
    monkeypatch.undo()
    reader = Collection.open(root)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CollectionError, match="permission denied") as info:
        reader.search("image", unit(1), 1)
    assert info.value.code == "collection.permission_denied" and one_line(info.value)
    with pytest.raises(CollectionError, match="permission denied") as info:
        Collection.open(root, writer=True)
    assert info.value.code == "collection.permission_denied"
    monkeypatch.undo()
    reader.close()
