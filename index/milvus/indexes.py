"""Index types: the FAISS factory vocabulary (what ``--index-factory`` takes) → Milvus vector indexes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from xsearch.core.errors import UsageError

from .. import factory as _factory

LITE_INDEX_TYPES = ("FLAT", "AUTOINDEX", "HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8")
_FACTORY_FORMS = "Flat, HNSW<M>, HNSW<M>_SQ8, IVF<nlist>,Flat, IVF<nlist>,SQ8, IVF<nlist>,PQ<m> (server only) or auto"


@dataclass(frozen=True)
class IndexChoice:
    """A Milvus vector index for one track: type, build parameters, default search parameters."""

    factory: str  # the FAISS factory string it stands for
    index_type: str
    build: dict
    search: dict

    @property
    def label(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.build.items())
        return f"{self.factory} (Milvus {self.index_type}{' ' + params if params else ''})"

    def to_json(self) -> dict:
        return {"factory": self.factory, "index_type": self.index_type, "build": self.build, "search": self.search}

    @classmethod
    def from_json(cls, d: dict) -> IndexChoice:
        return cls(d["factory"], d["index_type"], dict(d.get("build") or {}), dict(d.get("search") or {}))


#: The index of the meta and files collections (Milvus wants a vector field and an index on every collection).
FLAT = IndexChoice("Flat", "FLAT", {}, {})


def choose_index(factory: str, *, lite: bool, n: int = 0) -> IndexChoice:
    """The Milvus index for a FAISS factory string (UsageError code store.unsupported_index where none maps).

    Flat → FLAT; HNSW<M> → HNSW (M, efConstruction 80, ef 128); HNSW<M>_SQ8 → HNSW_SQ; IVF<n>,Flat → IVF_FLAT
    nlist=n; IVF<n>,SQ8 → IVF_SQ8; IVF<n>,PQ<m> → IVF_PQ (Milvus servers; milvus-lite has no IVF_PQ); "auto" →
    FLAT below 50k vectors on milvus-lite (switched to HNSW32 by :func:`auto_switch`, as the local store does),
    HNSW32 on a server (its growing segments are searched exactly anyway)."""
    text = str(factory).strip()
    if text.lower() == "auto":
        return choose_index("HNSW32" if not lite or n >= _factory.FLAT_MAX_VECTORS else "Flat", lite=lite)
    compact = text.replace(" ", "")
    hnsw_search = {"ef": _factory.HNSW_EF_SEARCH}
    if compact.lower() == "flat":
        return IndexChoice("Flat", "FLAT", {}, {})
    m = re.fullmatch(r"HNSW(\d+)(?:_SQ8|,SQ8)?", compact, re.I)
    if m and 2 <= int(m.group(1)) <= 2048:
        build = {"M": int(m.group(1)), "efConstruction": _factory.HNSW_EF_CONSTRUCTION}
        if "SQ8" in compact.upper():
            return IndexChoice(f"HNSW{m.group(1)}_SQ8", "HNSW_SQ", {**build, "sq_type": "SQ8"}, hnsw_search)
        return IndexChoice(f"HNSW{m.group(1)}", "HNSW", build, hnsw_search)
    m = re.fullmatch(r"IVF(\d+),(Flat|SQ8|PQ(\d+)(?:x(\d+))?)", compact, re.I)
    if m and 1 <= int(m.group(1)) <= 65_536:
        nlist = int(m.group(1))
        search = {"nprobe": _factory.default_nprobe(nlist)}
        codes = m.group(2).upper()
        if codes == "FLAT":
            return IndexChoice(f"IVF{nlist},Flat", "IVF_FLAT", {"nlist": nlist}, search)
        if codes == "SQ8":
            return IndexChoice(f"IVF{nlist},SQ8", "IVF_SQ8", {"nlist": nlist}, search)
        if lite:
            raise UsageError(f"index type {text!r} (IVF_PQ) is not available in milvus-lite; it supports "
                             f"{', '.join(LITE_INDEX_TYPES)}: use e.g. IVF{nlist},SQ8 or HNSW32",
                             code="store.unsupported_index", factory=text, store="milvus-lite",
                             supported=_FACTORY_FORMS.replace(", IVF<nlist>,PQ<m> (server only)", ""))
        nbits = int(m.group(4) or 8)
        return IndexChoice(text, "IVF_PQ", {"nlist": nlist, "m": int(m.group(3)), "nbits": nbits}, search)
    store = "milvus-lite" if lite else "milvus"
    raise UsageError(f"index type {text!r} has no Milvus equivalent; the Milvus store takes {_FACTORY_FORMS}",
                     code="store.unsupported_index", factory=text, store=store, supported=_FACTORY_FORMS)


def auto_switch(current: IndexChoice, n: int) -> IndexChoice | None:
    """The index an "auto" track on milvus-lite moves to at ``n`` vectors, or None to keep ``current``: FLAT →
    HNSW32 once it holds 50k vectors (back below 25k), as the local store switches Flat → HNSW32."""
    if current.index_type == "FLAT" and n >= _factory.FLAT_MAX_VECTORS:
        return choose_index("HNSW32", lite=True)
    if current.index_type != "FLAT" and n < _factory.FLAT_MAX_VECTORS // 2:
        return choose_index("Flat", lite=True)
    return None


def search_params(choice: IndexChoice, params: dict | None, limit: int) -> dict:
    """Milvus search parameters: IP metric, the index's defaults, the caller's efSearch / nprobe."""
    inner = dict(choice.search)
    params = params or {}
    if choice.index_type.startswith("HNSW"):
        inner["ef"] = max(int(params.get("efSearch", inner.get("ef", _factory.HNSW_EF_SEARCH))), limit)
    elif choice.index_type.startswith("IVF"):
        nlist = int(choice.build.get("nlist", 1))
        inner["nprobe"] = min(nlist, int(params.get("nprobe", inner.get("nprobe", 1))))
    return {"metric_type": "IP", "params": inner}
