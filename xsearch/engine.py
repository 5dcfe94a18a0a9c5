"""Engine: the Python API that the CLI (and later a server) call. Ties encoders, index and media together.

    from xsearch import Engine
    eng = Engine("~/my-collection")                  # or a name under $XSEARCH_HOME
    eng.index_folder("~/Pictures")
    eng.search([Query("text", "a dog on a beach")], to=["image"], k=5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from xsearch.errors import CollectionError, UsageError
from xsearch.media.types import MODALITIES
from xsearch.paths import collection_dir
from xsearch.query import Query
from xsearch.search import Filters, Hit, SearchRequest, check_targets, run_search


class Engine:
    """One collection and the model it was built with.

    ``model`` is a registry spec; for a new collection it defaults to ``auto``; for an existing one, the
    collection's own model is used and a different ``model`` is an error (use ``rebuild=True`` to switch).
    """

    def __init__(self, collection: str | Path | None = None, model: str | None = None, device: str | None = None):
        self.path = collection_dir(collection)
        self.model = model
        self.device = device
        self._encoders: dict = {}
        self.model_note = ""

    # -- model --------------------------------------------------------------------------------------------

    def stored_model(self) -> str | None:
        """The model spec the collection was built with (None when there is no collection yet)."""
        from xsearch.index import Collection

        if not Collection.exists(self.path):
            return None
        with Collection.open(self.path) as col:
            return col.model_spec or None

    def encoder(self, spec: str | None = None):
        """The encoder for ``spec`` (default: the collection's model, else ``self.model``, else ``auto``)."""
        from xsearch.encoders.registry import load_encoder

        spec = spec or self.model or self.stored_model() or "auto"
        if spec == "auto":
            from xsearch.encoders.auto import resolve_auto

            chosen, reason = resolve_auto()
            self.model_note = f"model: {chosen} ({reason})"
            spec = chosen
        if spec not in self._encoders:
            self._encoders[spec] = load_encoder(spec, self.device)
        return self._encoders[spec]

    def _open_for_read(self):
        from xsearch.index import Collection

        col = Collection.open(self.path)
        enc = self.encoder(col.model_spec)
        col.check_model(enc.model_id)
        return col, enc

    # -- indexing -----------------------------------------------------------------------------------------

    def index_folder(self, root: str | Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                     hidden: bool = False, prune: bool = True, rebuild: bool = False, index_factory: str = "auto",
                     workers: int = 2, files_per_batch: int = 32, wait_s: float = 0.0,
                     on_plan: Callable[[int], None] | None = None, on_progress: Callable[[int], None] | None = None):
        """Index (incrementally) the media under ``root`` into this collection; returns an IndexReport."""
        from xsearch.index import Collection
        from xsearch.indexer import IndexReport, index_folder
        from xsearch.media import discover

        root = Path(root).expanduser()
        iter(discover(root))  # a missing root fails here, before any model is loaded
        if rebuild and Collection.exists(self.path):
            Collection.delete(self.path, wait_s=wait_s)
        stored = self.stored_model()
        if stored and self.model and self.model not in (stored, "auto"):
            enc = self.encoder(self.model)
            with Collection.open(self.path) as col:
                col.check_model(enc.model_id)  # raises with the way out (--rebuild)
        if stored:
            col = Collection.open(self.path, writer=True, wait_s=wait_s)
            enc = _LazyEncoder(col.modalities, lambda: self._checked_encoder(col))  # loaded only if a file changed
            spec = col.model_spec
        else:
            enc = self.encoder(self.model or "auto")
            dims = {m: enc.spaces[enc.index_space(m)] for m in enc.modalities}
            col = Collection.open_or_create(self.path, model_id=enc.model_id, model_spec=enc.spec, dims=dims,
                                            factory=index_factory, wait_s=wait_s)
            spec = enc.spec
        with col:
            report = IndexReport(str(root.absolute()), str(self.path), spec, col.model_id, self.model_note)
            if col.repair_report is not None and col.repair_report.changed:
                report.repaired = str(col.repair_report)
            return index_folder(col, enc, root, include=include, exclude=exclude, hidden=hidden, prune=prune,
                                workers=workers, files_per_batch=files_per_batch, on_plan=on_plan,
                                on_progress=on_progress, report=report)

    def _checked_encoder(self, col):
        enc = self.encoder(col.model_spec)
        col.check_model(enc.model_id)
        return enc

    def remove(self, paths: Sequence[str | Path], wait_s: float = 0.0) -> int:
        """Drop files (or everything under folders) from the collection; returns how many files went."""
        from xsearch.index import Collection

        with Collection.open(self.path, writer=True, wait_s=wait_s) as col:
            ids = []
            for p in paths:
                ap = Path(p).expanduser().absolute()
                row = col.catalog.get_file(str(ap))
                if row is not None:
                    ids.append(row.id)
                else:
                    ids += [r.id for r in col.catalog.files(under=ap)]
            if not ids:
                raise UsageError(f"nothing in the collection matches {', '.join(str(p) for p in paths)}.")
            col.remove_files(ids)
            return len(set(ids))

    # -- searching ----------------------------------------------------------------------------------------

    def search(self, queries: Sequence[Query], to: Sequence[str] | str = "image", k: int | None = None, *,
               weights: Sequence[float] | None = None, fusion: str = "mean", threshold: float | None = None,
               filters: Filters | None = None, params: dict | None = None) -> dict[str, list[Hit]]:
        """Ranked files per target modality (``to``: a modality, a list, or "all"); ``k`` files each (default 10,
        fewer when the collection has fewer; an explicit ``k`` beyond the collection is an error)."""
        col, enc = self._open_for_read()
        with col:
            explicit = to != "all"
            targets = list(MODALITIES) if to == "all" else ([to] if isinstance(to, str) else list(to))
            for t in targets:
                if t not in MODALITIES:
                    raise UsageError(f"--to {t!r}: choose image, audio, text or all.")
            targets = check_targets(col, targets, explicit)
            req = SearchRequest(list(queries), targets, k, list(weights or []), fusion, threshold,
                                filters or Filters(), dict(params or {}))
            return run_search(col, enc, req)

    def similar(self, path: str | Path, to: str | None = None, k: int | None = None) -> dict[str, list[Hit]]:
        """Items near a file: its stored vectors when it is indexed (same space), else the file embedded anew."""
        from xsearch.media import discover
        from xsearch.media.types import Skipped

        p = Path(path).expanduser().absolute()
        col, enc = self._open_for_read()
        with col:
            row = col.catalog.get_file(str(p))
            modality = row.modality if row else None
            if modality is None:
                if not p.exists():
                    raise UsageError(f"{p} is not in the collection and does not exist.")
                found = next(iter(discover(p)), None)
                if found is None or isinstance(found, Skipped):
                    raise UsageError(f"{p}: {found.reason if found else 'not a media file'}")
                modality = found.modality
            target = to or modality
            targets = check_targets(col, [target], True)
            req = SearchRequest([Query(modality, str(p))], targets, k, exclude_paths=(str(p),))
            if row is not None and enc.index_space(modality) == enc.index_space(target):
                from xsearch.encoders.base import l2_normalize
                from xsearch.search import _search_files, check_k

                req.k = check_k(col, targets, k)
                ids = col.catalog.item_ids_of_files([row.id]).get(modality)
                vec = l2_normalize(col.reconstruct(modality, ids).mean(0, keepdims=True))[0]
                hits = _search_files(col, target, vec, req, None)
                for rank, h in enumerate(hits, 1):
                    h.rank = rank
                return {target: hits}
            return run_search(col, enc, req)

    def duplicates(self, modality: str = "image", threshold: float = 0.95, k: int = 8) -> list[dict]:
        """Pairs of different files whose vectors have cosine ≥ ``threshold``, best first."""
        if not 0 < threshold <= 1:
            raise UsageError(f"--threshold must be in (0, 1], not {threshold}.")
        col, _ = self._open_for_read()
        with col:
            check_targets(col, [modality], True)
            ids = col.catalog.item_ids(modality)
            vecs = col.reconstruct(modality, ids)
            kk = min(len(ids), k + 1)
            scores, nn = col.search(modality, vecs, kk)
            rows = col.catalog.items(ids.tolist())
            pairs: dict[tuple[str, str], float] = {}
            for qi, item in enumerate(ids):
                a = rows[int(item)]
                for s, other in zip(scores[qi], nn[qi]):
                    if other < 0 or s < threshold:
                        continue
                    b = rows.get(int(other))
                    if b is None or b.file_id == a.file_id:
                        continue
                    key = tuple(sorted((a.path, b.path)))
                    pairs[key] = max(pairs.get(key, -1.0), float(s))
            return [{"a": a, "b": b, "score": s} for (a, b), s in sorted(pairs.items(), key=lambda kv: -kv[1])]

    # -- evaluation ---------------------------------------------------------------------------------------

    def evaluate(self, manifest: str | Path, *, aligner: str = "model", split: str | None = None,
                 directions: Sequence[tuple[str, str]] | None = None, relevance: str = "auto",
                 factory: str = "Flat", ks: Sequence[int] | None = None,
                 on_item: Callable[[], None] | None = None, log: Callable[[str], None] | None = None):
        """Retrieval metrics per direction on a manifest split (see xsearch.evaluate), for this engine's model
        (``aligner="model"``; default spec ``builtin``) or the CCA baseline (``aligner="cca"``)."""
        from xsearch.eval import DEFAULT_KS

        ks = tuple(ks or DEFAULT_KS)
        if aligner == "cca":
            from xsearch.cca import evaluate_cca

            return evaluate_cca(str(manifest), split=split, directions=directions, relevance=relevance,
                                factory=factory, ks=ks, log=log)
        if aligner != "model":
            raise UsageError(f"--aligner {aligner!r}: choose model or cca.")
        from xsearch.evaluate import evaluate

        encoder = self.encoder(self.model or self.stored_model() or "builtin")
        return evaluate(encoder, str(manifest), split=split, directions=directions, relevance=relevance,
                        factory=factory, ks=ks, on_item=on_item)

    # -- info ---------------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """The collection's stats (files / items / index per modality, model)."""
        from xsearch.index import Collection

        if not Collection.exists(self.path):
            raise CollectionError(f"no collection at {self.path}; create it with `xsearch index <folder>`")
        with Collection.open(self.path) as col:
            return col.stats()


class _LazyEncoder:
    """Stands in for an encoder whose modalities are known; loads the real one on first use of anything else.

    A re-run over an unchanged folder then never pays for loading a model.
    """

    def __init__(self, modalities, load: Callable[[], object]):
        self.modalities = tuple(modalities)
        self._load = load
        self._encoder = None

    def __getattr__(self, name):
        if self._encoder is None:
            self._encoder = self._load()
        return getattr(self._encoder, name)
