"""The Milvus backend: what the store registry (index/__init__.py) loads for ``milvus-lite:`` and ``milvus://``
collection arguments — opening readers and writers, creating and deleting collections."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import uuid
from collections.abc import Mapping

from xsearch.core.errors import CollectionError, UsageError

from ..store import Backend, StoreSpec
from .connection import Connection, lite_servers
from .db import Db
from .features import Features
from .indexes import IndexChoice, choose_index
from .reader import MilvusStore
from .uri import Target, parse_uri
from .words import create_words
from .writer import MilvusWriter
from .writer_lock import take_writer_lock, uses_flock

FORMAT_VERSION = 1


class MilvusBackend(Backend):
    """Collections named ``milvus-lite:PATH.db`` or ``milvus://HOST:PORT/NAME``."""

    def __init__(self, name: str = "milvus"):
        self.name = name

    def resolve(self, uri: str | None) -> str:
        return parse_uri(str(uri)).uri

    def exists(self, uri: str) -> bool:
        target = parse_uri(uri)
        if target.lite:
            if not os.path.isdir(target.path):
                return False
            if not Connection.is_open(target) and target.path not in lite_servers():
                # no server here: read milvus-lite's layout instead of starting one (or fighting another process)
                return os.path.isfile(os.path.join(target.path, "collections", target.coll("meta"), "schema.json"))
        conn = Connection.acquire(target)
        try:
            return Db(conn).exists()
        finally:
            conn.release()

    def open(self, uri: str) -> MilvusStore:
        target = parse_uri(uri)
        if target.lite and not os.path.isdir(target.path):
            raise CollectionError(f"no collection at {target.uri}", code="collection.missing", collection=target.uri)
        conn = Connection.acquire(target)
        try:
            return MilvusStore(conn)
        except BaseException:
            conn.release()
            raise

    def open_writer(self, uri: str, *, create: StoreSpec | None = None, wait_s: float = 0.0) -> MilvusWriter:
        target = parse_uri(uri)
        if create is None and target.lite and not os.path.isdir(target.path):
            raise CollectionError(f"no collection at {target.uri}", code="collection.missing", collection=target.uri)
        choices = _choices(create, target) if create is not None else None  # a bad index type fails before anything
        conn = Connection.acquire(target, wait_s)
        lock = None
        try:
            db = Db(conn)
            if choices is not None:
                _check_supported(choices, db.features, target)
            if not db.exists():
                if create is None:
                    raise CollectionError(f"no collection at {target.uri}", code="collection.missing",
                                          collection=target.uri)
                if uses_flock(target):
                    lock = take_writer_lock(db, wait_s)
                    if not db.exists():
                        _create(db, create, choices)
                else:
                    _create(db, create, choices)
                    lock = take_writer_lock(db, wait_s)
            else:
                lock = take_writer_lock(db, wait_s)
            writer = MilvusWriter(conn, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            conn.release()
            raise
        if create is not None:
            try:
                writer.check_model(create.model_id)
                for track, dim in create.dims.items():
                    have = writer.dims.get(track)
                    if have is not None and have != int(dim):
                        raise CollectionError(
                            f"collection {writer.uri} stores {track} vectors of {have} dimensions, not {dim}",
                            code="collection.dim_mismatch", collection=writer.uri, modality=track, have=have,
                            want=int(dim))
            except BaseException:
                writer.close()
                raise
        return writer

    def delete(self, uri: str, *, wait_s: float = 0.0) -> None:
        target = parse_uri(uri)
        if target.lite and not os.path.isdir(target.path):
            return
        conn = Connection.acquire(target, wait_s)
        try:
            db = Db(conn)
            lock = take_writer_lock(db, wait_s) if uses_flock(target) or db.exists() else None
            try:
                db.drop_all()  # a lease row goes with the meta collection
            finally:
                if lock is not None:
                    lock.release()
        finally:
            conn.release()


def _choices(spec: StoreSpec, target: Target) -> dict[str, IndexChoice]:
    """The Milvus index of each track of a collection to create (a bad factory string or track fails here)."""
    factories = dict(spec.factory) if isinstance(spec.factory, dict) else {m: spec.factory for m in spec.dims}
    if set(factories) != set(spec.dims):
        raise ValueError(f"factory modalities {sorted(factories)} differ from dims {sorted(spec.dims)}")
    for track, dim in spec.dims.items():
        if not re.fullmatch(r"[a-z]+", track) or track in ("meta", "files", "words") or int(dim) <= 0:
            raise ValueError(f"bad track {track!r} of dimension {dim}")
    return {t: choose_index(f, lite=target.lite) for t, f in factories.items()}


def _check_supported(choices: Mapping[str, IndexChoice], features: Features, target: Target) -> None:
    """One coded error, before anything is created, for an index type this Milvus does not build."""
    forms = {"FLAT": "Flat", "AUTOINDEX": "auto", "HNSW": "HNSW<M>", "HNSW_SQ": "HNSW<M>_SQ8",
             "IVF_FLAT": "IVF<nlist>,Flat", "IVF_SQ8": "IVF<nlist>,SQ8", "IVF_PQ": "IVF<nlist>,PQ<m>"}
    for track, choice in choices.items():
        if choice.index_type not in features.index_types:
            supported = ", ".join(forms[t] for t in features.index_types if t in forms)
            raise UsageError(f"index type {choice.factory!r} (Milvus {choice.index_type}) is not available on the "
                             f"Milvus at {target.path or target.address} ({features.version}); it takes "
                             f"{supported}", code="store.unsupported_index", factory=choice.factory, store="milvus",
                             track=track, version=features.version, supported=supported)


def _create(db: Db, spec: StoreSpec, choices: Mapping[str, IndexChoice]) -> None:
    """Create the collection: its Milvus collections, then the spec and state rows (generation 0, empty). A
    creation that fails leaves nothing behind."""
    try:
        _create_all(db, spec, choices)
    except BaseException:
        with contextlib.suppress(Exception):
            db.drop_all()
        raise


def _create_all(db: Db, spec: StoreSpec, choices: Mapping[str, IndexChoice]) -> None:
    db.drop_all()  # what a creation that did not finish left
    words = db.features.full_text  # the keyword index (words.py) where this Milvus has full-text search
    db.create({t: (int(spec.dims[t]), choices[t]) for t in spec.dims})
    if words:
        create_words(db)
    factories = dict(spec.factory) if isinstance(spec.factory, dict) else {m: spec.factory for m in spec.dims}
    creation = uuid.uuid4().hex
    db.meta_put_many({
        "spec": {"format_version": FORMAT_VERSION, "model_id": spec.model_id, "model_spec": spec.model_spec,
                 "dims": {t: int(d) for t, d in spec.dims.items()}, "factory": factories,
                 "index": {t: c.to_json() for t, c in choices.items()}, "creation": creation,
                 "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "words": words},
        "state:000000000000": {"gen": 0, "pending": None, "next_file_id": 1, "next_item_id": 1, "counts": {},
                  "creation": creation},
    })
    if db.t.lite:
        db.call("flush", db.c.flush, db.t.coll("meta"))
