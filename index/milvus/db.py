"""The Milvus side of one xsearch collection: its Milvus collections (the layout: the package docstring) and every
call made to them — a call that finds its collection released loads it and tries again, and a failure becomes one
coded CollectionError."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping

from xsearch.core.errors import CollectionError, XsearchError

from .connection import Connection, milvus_error
from .features import Features, detect
from .filters import quote
from .indexes import FLAT, IndexChoice
from .rows import files_schema, items_schema, meta_schema

LOAD_RETRIES = 3  # load-and-retry rounds for a call that finds its collection released (see Db.call)
MAX_TOPK = 16_384  # Milvus's limit on search / query results per call
ID_CHUNK = 1000  # ids per `in [...]` expression
SCAN_BATCH = 4096
#: Reads on a server: Session sees this client's own writes (the writer's) without waiting for the server's 200 ms
#: time tick that Strong waits for on every call; a reader in another process sees each commit all or nothing
#: through the per-generation state rows (``state:<seq>``, :meth:`Db.state_get`). Lease reads are Strong.
READ_LEVEL = "Session"
STATE_KEEP = 3  # state rows kept: the newest and the two before it (a reader between two queries still finds one)


def _says_not_loaded(exc: BaseException) -> bool:
    """Whether a failed Milvus call says its collection is not loaded (released, or never loaded)."""
    text = str(getattr(exc, "message", "") or exc).lower()
    return "released" in text or "not loaded" in text or "call load" in text


class Db:
    """The Milvus collections of one xsearch collection, and every call made to them (errors → CollectionError)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.t = conn.target
        self.c = conn.client
        self._exists = False

    @property
    def features(self) -> Features:
        return detect(self.conn)

    def call(self, doing: str, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, a pymilvus call on the collection ``args[0]``; ``doing`` names it in errors."""
        if not self.t.lite and fn in (self.c.query, self.c.search):
            kwargs.setdefault("consistency_level", READ_LEVEL)
        try:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                if not _says_not_loaded(exc) or not args:
                    raise
            # not loaded (milvus-lite after a restart, a server after someone released it): load, try again;
            # milvus-lite's delete-by-filter flips a released collection to "loaded" and back without its lock, so a
            # load that lands in between returns at once and the retry can still find it released
            for attempt in range(LOAD_RETRIES):
                self.c.load_collection(args[0])
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001
                    if attempt == LOAD_RETRIES - 1 or not _says_not_loaded(exc):
                        raise
                    time.sleep(0.05 * (attempt + 1))
        except XsearchError:
            raise
        except Exception as exc:  # noqa: BLE001 - MilvusException, grpc errors: one coded line
            text = str(getattr(exc, "message", "") or exc).lower()
            if "not found" in text and ("collection" in text or "can't find" in text):
                raise CollectionError(f"collection {self.t.uri} is gone (deleted while open?)",
                                      code="collection.missing", collection=self.t.uri) from None
            raise milvus_error(exc, self.t, doing) from None

    # meta -----------------------------------------------------------------------------------------------------

    def exists(self, cached: bool = False) -> bool:
        """Whether the collection exists (``cached``: a yes seen before on this Db is not asked again)."""
        if cached and self._exists:
            return True
        self._exists = bool(self.call("inspect", self.c.has_collection, self.t.coll("meta")))
        return self._exists

    def load_all(self) -> None:
        """Load every Milvus collection of this xsearch collection (a no-op for loaded ones). milvus-lite reopens
        collections released; loading them when a reader or writer opens keeps every later call on loaded ones."""
        for name in self.call("list", self.c.list_collections):
            if name.startswith(self.t.name + "__"):
                self.call("load", self.c.load_collection, name)

    def meta_get(self, key: str, *, strong: bool = False) -> dict | None:
        """A meta row (``strong``: seeing every client's writes, e.g. another writer's lease)."""
        kw = {"consistency_level": "Strong"} if strong and not self.t.lite else {}
        rows = self.call("read", self.c.query, self.t.coll("meta"), filter=f"key == {quote(key)}",
                         output_fields=["value"], limit=1, **kw)
        return json.loads(rows[0]["value"]) if rows else None

    # state: one row per write -------------------------------------------------------------------------------

    def state_get(self) -> tuple[int, dict] | None:
        """(sequence, state) of the newest state row, or None. Each write of the state is a new row ``state:<seq>``:
        Milvus does not make an upsert atomic for readers (on 2.3.5 a reader saw a replaced row's older version
        come back), while a new row is there or not. ``state`` alone is the row of collections written before."""
        rows = self.call("read", self.c.query, self.t.coll("meta"), filter='key like "state%"',
                         output_fields=["key", "value"], limit=64)
        found = [(_state_seq(r["key"]), r["value"]) for r in rows if _state_seq(r["key"]) is not None]
        if not found:
            return None
        seq, value = max(found, key=lambda sv: sv[0])
        return seq, json.loads(value)

    def state_put(self, seq: int, value: dict) -> None:
        """Write state row ``seq`` (the previous sequence + 1), then drop those older than the last STATE_KEEP."""
        self.meta_put_many({f"state:{seq:012d}": value})
        self.meta_delete(f'key like "state%" and key < "state:{max(0, seq - STATE_KEEP + 1):012d}"')

    def meta_put(self, key: str, value: dict) -> None:
        self.meta_put_many({key: value})

    def meta_put_many(self, values: Mapping[str, dict]) -> None:
        rows = [{"key": k, "value": json.dumps(v, separators=(",", ":")), "v": [1.0, 0.0]} for k, v in values.items()]
        for start in range(0, len(rows), 2000):
            self.call("write", self.c.upsert, self.t.coll("meta"), rows[start:start + 2000])

    def meta_delete(self, expr: str) -> None:
        self.call("write", self.c.delete, self.t.coll("meta"), filter=expr)

    def meta_scan(self, prefix: str) -> dict[str, dict]:
        out, last = {}, None
        while True:
            expr = f"key like {quote(prefix + '%')}" + (f" and key > {quote(last)}" if last is not None else "")
            rows = self.call("read", self.c.query, self.t.coll("meta"), filter=expr, output_fields=["key", "value"],
                             limit=SCAN_BATCH)
            rows = [r for r in rows if r["key"].startswith(prefix)]
            if not rows:
                return out
            rows.sort(key=lambda r: r["key"])
            out.update((r["key"], json.loads(r["value"])) for r in rows)
            last = rows[-1]["key"]
            if len(rows) < SCAN_BATCH:
                return out

    # scans ----------------------------------------------------------------------------------------------------

    def scan(self, coll: str, expr: str, fields: list[str], batch: int = SCAN_BATCH) -> Iterator[list[dict]]:
        """Every row matching ``expr`` in pages ordered by id (keyset pagination: ``id > last``)."""
        last = -1
        batch = max(1, min(int(batch), MAX_TOPK))
        while True:
            where = f"id > {last}" + (f" and ({expr})" if expr else "")
            rows = self.call("read", self.c.query, coll, filter=where,
                             output_fields=list(dict.fromkeys(["id", *fields])), limit=batch)
            if not rows:
                return
            rows.sort(key=lambda r: r["id"])
            yield rows
            last = int(rows[-1]["id"])
            if len(rows) < batch:
                return

    def count(self, coll: str, expr: str = "") -> int:
        rows = self.call("count", self.c.query, coll, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    # creation -------------------------------------------------------------------------------------------------

    def create(self, tracks: Mapping[str, tuple[int, IndexChoice]]) -> None:
        """Create the Milvus collections, each indexed and loaded: files, one per track (dim, index), then meta."""
        self._loading: list[str] = []
        self._create(self.t.coll("files"), files_schema(self.c), "v", FLAT)
        for track, (dim, choice) in tracks.items():
            self._create(self.t.coll(track), items_schema(self.c, dim), "vector", choice)
        self._wait_loaded()
        self._create(self.t.coll("meta"), meta_schema(self.c), "v", FLAT)  # last: it says "exists"
        self._wait_loaded()

    def _create(self, name: str, schema, field: str, choice: IndexChoice) -> None:
        if self.call("inspect", self.c.has_collection, name):
            self.call("delete", self.c.drop_collection, name)  # left by a creation that did not finish
        # the collection's default level; reads name theirs (READ_LEVEL, Strong for the lease)
        self.call("create", self.c.create_collection, name, schema=schema, consistency_level="Session")
        self.set_index(name, field, choice, wait=False)
        if self.t.lite:
            self.call("load", self.c.load_collection, name)
        else:  # a server loads the collections side by side (~3 s each on 2.3.5), waited for below
            self.call("load", self.c.load_collection, name, _async=True)
            self._loading.append(name)

    def _wait_loaded(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        for name in self._loading:
            while "Loaded" not in str(self.call("load", self.c.get_load_state, name).get("state")):
                if time.monotonic() > deadline:
                    raise CollectionError(f"Milvus did not load {name} within {timeout_s:.0f} s",
                                          code="store.milvus_error", collection=self.t.uri, doing="load")
                time.sleep(0.1)
        self._loading = []

    def set_index(self, name: str, field: str, choice: IndexChoice, *, wait: bool) -> None:
        params = self.c.prepare_index_params()
        # nested: milvus-lite reads build parameters only from the "params" entry (pymilvus flattens a plain dict)
        params.add_index(field, index_type=choice.index_type, index_name=field, metric_type="IP",
                         params={"params": dict(choice.build)} if choice.build else None)
        self.call("index", self.c.create_index, name, params, sync=wait, timeout=None if wait else 60)

    def reindex(self, track: str, choice: IndexChoice) -> None:
        """Replace a track's vector index (release, drop, build, load)."""
        name = self.t.coll(track)
        self.call("release", self.c.release_collection, name)
        self.call("index", self.c.drop_index, name, "vector")
        self.set_index(name, "vector", choice, wait=True)
        self.call("load", self.c.load_collection, name)

    def drop_all(self) -> None:
        names = self.call("list", self.c.list_collections)
        for name in names:
            if name.startswith(self.t.name + "__"):
                self.call("delete", self.c.drop_collection, name)



def _state_seq(key: str) -> int | None:
    """``state`` → -1, ``state:000000000012`` → 12, anything else → None."""
    if key == "state":
        return -1
    head, _, seq = key.partition(":")
    return int(seq) if head == "state" and seq.isdigit() else None
