"""Engine: the Python API the CLI and a server call. One collection, its store and its model, opened once.

    from xsearch import Engine
    with Engine("~/my-collection") as eng:           # a directory, or a name under $XSEARCH_HOME
        eng.index_folder("~/Pictures")
        eng.search([Query("text", "a dog on a beach")], to="image", k=5)

An Engine is a long-lived session: the store reader and the encoder are opened on first use and kept, so a
search costs the query's embedding and the vector search, never loading or checksumming the index. It is
thread-safe (many searches at once) and follows commits made by any writer (this process or another one) on
the next call. Every argument is checked here, at the API edge (xsearch.engine.checks), with an XsearchError
carrying a stable code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from xsearch.core.errors import UsageError
from xsearch.core.types import Filters, Hit, IndexReport, Query
from xsearch.engine import checks
from xsearch.engine.search import SearchRequest, add_spans, k_for, run_search, search_vectors, usable_targets
from xsearch.media import modalities


class Engine:
    """One collection and the model it was built with.

    ``model`` is a registry spec; for a new collection it defaults to ``auto``; for an existing one, the
    collection's own model is used and a different ``model`` is an error (use ``rebuild=True`` to switch).
    """

    def __init__(self, collection: str | Path | None = None, model: str | None = None, device: str | None = None,
                 reranker: str | Path | None = None):
        from xsearch.index import backend_for, resolve_uri

        self.uri = resolve_uri(None if collection is None else str(collection))
        self.path = backend_for(self.uri).directory(self.uri)  # the collection's folder; None: not a folder here
        self.model = model
        self.device = device
        self._lock = threading.RLock()
        self._store = None
        self._encoders: dict[str, object] = {}
        self._checked: tuple[str, str] | None = None  # (store model_id, spec) already checked
        self.reranker_path = reranker  # a re-ranker checkpoint dir for search(rerank=True); None: the shipped one
        self._reranker = None
        self._fit: tuple | None = None  # (generation, model_fit verdict) last read

    # -- session ------------------------------------------------------------------------------------------

    def store(self):
        """The long-lived reader of this collection (opened once; CollectionError when there is none)."""
        with self._lock:
            if self._store is None:
                from xsearch.index import open_store

                self._store = open_store(self.uri)
            return self._store

    def close(self) -> None:
        """Close the store reader (encoders stay cached in the process)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def exists(self) -> bool:
        from xsearch.index import store_exists

        return store_exists(self.uri)

    # -- model --------------------------------------------------------------------------------------------

    def stored_model(self) -> str | None:
        """The model spec the collection was built with (None when there is no collection yet)."""
        if not self.exists():
            return None
        return self.store().model_spec or None

    def resolve_model(self, spec: str | None = None) -> tuple[str, str]:
        """(concrete spec, note): ``auto`` resolved once, in the registry; the note says what auto chose and why."""
        from xsearch.encoders.registry import resolve_spec

        return resolve_spec(spec or self.model or "auto")

    def encoder(self, spec: str | None = None):
        """The encoder for ``spec`` (default: the collection's model, else ``self.model``, else ``auto``),
        loaded once per engine (thread-safe)."""
        from xsearch.encoders.registry import load_encoder

        spec = spec or self.model or self.stored_model() or "auto"
        with self._lock:
            if spec not in self._encoders:
                concrete, _ = self.resolve_model(spec)
                self._encoders[spec] = load_encoder(concrete, self.device)
            return self._encoders[spec]

    def needs_prepare(self, spec: str | None = None) -> bool:
        """True when the model (default: the collection's, if this engine loaded it) has one-time work to do."""
        with self._lock:
            encoders = [self.encoder(spec)] if spec else list(self._encoders.values())
        return any(getattr(e, "prepare", None) is not None and not getattr(e, "prepared", False) for e in encoders)

    def prepare(self, spec: str | None = None, progress: Callable[[int, int], None] | None = None) -> None:
        """Do a model's one-time work now (a bridged pair embeds its vocabulary), e.g. behind a progress bar,
        instead of silently inside the first query. Without ``spec``: every model this engine has loaded."""
        with self._lock:
            encoders = [self.encoder(spec)] if spec else list(self._encoders.values())
        for encoder in encoders:
            prepare = getattr(encoder, "prepare", None)
            if prepare is not None:
                prepare(progress=progress)

    def _reader(self):
        """(store, encoder) for searching; the model is checked against the collection once per model_id."""
        store = self.store()
        if self.model and self.model not in ("auto", store.model_spec):
            store.check_model(self.encoder(self.model).model_id)  # a model other than the collection's: refuse
        enc = self.encoder(store.model_spec)
        key = (store.model_id, enc.model_id)
        if self._checked != key:
            store.check_model(enc.model_id)
            self._checked = key
        return store, enc

    # -- indexing -----------------------------------------------------------------------------------------

    def index_folder(self, root: str | Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                     hidden: bool = False, prune: bool = True, prune_all: bool = False, rebuild: bool = False,
                     index_factory: str = "auto", memory_budget: int | str | None = None,
                     latency_budget: float | str | None = None, workers: int = 2, files_per_batch: int = 32,
                     wait_s: float = 0.0,
                     executor: str = "local", executor_options: dict | None = None,
                     on_plan: Callable[[int], None] | None = None,
                     on_progress: Callable[[int], None] | None = None, follow_links: bool = False,
                     ocr: bool | None = None) -> IndexReport:
        """Index (incrementally) the media under ``root`` into this collection; returns an IndexReport.
        Symlinks that lead out of ``root`` are skipped (and reported) unless ``follow_links``.

        ``executor``: where decoding and embedding run — "local" (``workers`` decode processes) or "ray"
        (``executor_options`` such as ``{"address": "auto"}``); this process stays the one writer either way.

        ``memory_budget`` (bytes, or "200MB", "1.5GB", "512MiB") and ``latency_budget`` (ms, or "5ms", "0.01s")
        choose each "auto" index type from the collection's size and dimension (xsearch.index.local.budget: the fastest
        type within both whose expected recall@10 reaches 0.95, e.g. IVF-PQ fast scan re-ranked with float16
        exact vectors kept on disk); they are stored with the collection (replacing earlier budgets) and the
        type is re-chosen as it grows. The choice and its reason show in ``stats()``.

        ``ocr``: True reads the words in pictures and video frames for keyword search (the ``ocr`` extra), False
        stops and forgets them, None keeps what the collection was indexed with (docs/ocr.md)."""
        from xsearch.core.units import parse_latency, parse_size
        from xsearch.engine.executors import make_executor
        from xsearch.engine.indexer import index_folder
        from xsearch.index import delete_store, open_writer
        from xsearch.index.store import StoreSpec
        from xsearch.media import discover

        checks.check_int("workers", workers, 0)
        checks.check_int("files_per_batch", files_per_batch, 1)
        checks.check_number("wait_s", wait_s, 0)
        memory_budget_bytes, latency_budget_ms = parse_size(memory_budget), parse_latency(latency_budget)
        run_with = make_executor(executor, workers=workers, files_per_batch=files_per_batch,
                                 **dict(executor_options or {}))
        root = Path(root).expanduser()
        iter(discover(root))  # a missing root fails here, before any model is loaded
        if rebuild and self.exists():
            self.close()
            delete_store(self.uri, wait_s=wait_s)
        stored = self.stored_model()
        note = ""
        if stored:
            if self.model and self.model not in (stored, "auto"):
                self.store().check_model(self.encoder(self.model).model_id)  # raises with the way out
            writer = open_writer(self.uri, wait_s=wait_s)
            if memory_budget_bytes is not None or latency_budget_ms is not None:
                try:
                    writer.set_budgets(memory_budget_bytes=memory_budget_bytes, latency_budget_ms=latency_budget_ms)
                except BaseException:
                    writer.close()
                    raise
            enc = _LazyEncoder(writer.modalities, lambda: self._checked_writer_encoder(writer))
        else:
            from xsearch.encoders.base import tracks

            spec, note = self.resolve_model(self.model or "auto")
            enc = self.encoder(spec)
            dims = {m: enc.spaces[enc.index_space(m)] for m in tracks(enc)}
            writer = open_writer(self.uri, wait_s=wait_s,
                                 create=StoreSpec(enc.model_id, enc.spec, dims, index_factory,
                                                  memory_budget_bytes=memory_budget_bytes,
                                                  latency_budget_ms=latency_budget_ms))
        with writer:
            from xsearch.engine.words import resolve_text_tracks

            text_tracks = resolve_text_tracks(writer, ocr)
            report = IndexReport(str(root.absolute()), writer.uri, writer.model_spec, writer.model_id, note)
            repaired = writer.repair_report
            if repaired is not None and getattr(repaired, "changed", False):
                report.repaired = str(repaired)
            if getattr(repaired, "manifest_lost", False):
                report.notes.append(f"{writer.uri}: its manifest.json was missing, so the collection was started "
                                    "afresh: the old catalog and vectors were deleted and every file is embedded "
                                    "again")
            report = index_folder(writer, enc, root, include=include, exclude=exclude, hidden=hidden, prune=prune,
                                  prune_all=prune_all, workers=workers, files_per_batch=files_per_batch,
                                  on_plan=on_plan, on_progress=on_progress, report=report, executor=run_with,
                                  follow_links=follow_links, text_tracks=text_tracks)
            report.model_fit = self._measure_fit(writer)
            return report

    def _measure_fit(self, store) -> dict | None:
        """Whether the builtin model knows these files (xsearch.engine.fit), measured now and kept beside the
        collection for search, info and the page."""
        from xsearch.engine import fit

        found = fit.verdict(store.model_spec, fit.sample((f.path, f.modality) for f in store.files())) \
            if fit.applies(store.model_spec) else None
        fit.save(self.path, found)
        self._fit = None  # the reader sees a new generation: read it again from the kept file
        return found

    def model_fit(self) -> dict | None:
        """The verdict of xsearch.engine.fit for this collection (None: its model is not the shipped builtin):
        kept from the last `index` run, else measured now from a sample of its files."""
        from xsearch.engine import fit

        store = self.store()
        spec = store.model_spec
        if not fit.applies(spec):
            return None
        generation = (spec, store.generation)
        if self._fit is not None and self._fit[0] == generation:
            return self._fit[1]
        found = fit.load(self.path, spec)
        if found is None:
            found = fit.verdict(spec, fit.sample((f.path, f.modality) for f in store.files()))
        self._fit = (generation, found)
        return found

    def _checked_writer_encoder(self, writer):
        enc = self.encoder(writer.model_spec)
        writer.check_model(enc.model_id)
        return enc

    def remove(self, paths: Sequence[str | Path], wait_s: float = 0.0, allow_most: bool = False) -> int:
        """Drop files (or everything under folders) from the collection; returns how many files went.

        An empty path is refused (``remove.empty_path``: it would mean the current folder); so is removing more
        than half of the collection's files (and more than one) at once unless ``allow_most``
        (``remove.too_many``)."""
        from xsearch.engine.indexer import PRUNE_GUARD_FRACTION
        from xsearch.index import open_writer
        from xsearch.media.discover import require_utf8

        if isinstance(paths, (str, Path)):
            paths = [paths]
        for p in paths:
            if not isinstance(p, (str, os.PathLike)) or not os.fspath(p).strip():
                raise UsageError(f"an empty path ({p!r}) names nothing to remove; give the file or folder",
                                 code="remove.empty_path", path=str(p))
            require_utf8(p)  # such a path is never indexed, and the store cannot even look it up
        with open_writer(self.uri, wait_s=wait_s) as writer:
            ids = []
            for p in paths:
                ap = str(Path(p).expanduser().absolute())
                row = writer.file(ap)
                ids += [row.id] if row is not None else [r.id for r in writer.files(under=ap)]
            if not ids:
                raise UsageError(f"nothing in the collection matches {', '.join(str(p) for p in paths)}",
                                 code="remove.no_match", paths=", ".join(str(p) for p in paths))
            ids = sorted(set(ids))
            total = len(writer.files())
            if not allow_most and len(ids) > 1 and len(ids) > PRUNE_GUARD_FRACTION * total:
                raise UsageError(f"this would remove {len(ids)} of the {total} files in the collection (more than "
                                 "half); nothing was removed", code="remove.too_many", n=len(ids), total=total)
            writer.remove_files(ids)
            return len(ids)

    # -- searching ----------------------------------------------------------------------------------------

    def targets(self, to: Sequence[str] | str | None) -> tuple[list[str], bool]:
        """``to`` as a list of modalities (``"all"``: every modality) and whether it was named explicitly."""
        return checks.check_targets(to)

    def search(self, queries: Sequence[Query], to: Sequence[str] | str = "image", k: int | None = None, *,
               weights: Sequence[float] | None = None, fusion: str = "mean", threshold: float | None = None,
               filters: Filters | None = None, params: dict | None = None,
               rerank: bool = False, mode: str | None = None) -> dict[str, list[Hit]]:
        """Ranked files per target modality (``to``: a modality, a list, or "all"); ``k`` files each (default 10,
        fewer when the collection has fewer; an explicit ``k`` beyond the collection is an error).

        ``fusion``: mean, weighted, rrf, vote or hybrid (xsearch.engine.fusion). ``rerank``: the best max(k, 50)
        candidates per target are re-scored by the re-ranker (xsearch.encoders.reranker), k kept; a hit's
        ``score`` is then the re-ranker's and ``retrieval_score`` the index's (``threshold`` applies to the
        index's score).

        ``mode``: hybrid, vector or keyword (xsearch.engine.hybrid); None: hybrid where the collection has a
        keyword index (text passages, OCR lines, file names), else vector."""
        from xsearch.engine.hybrid import check_mode

        check_mode(mode)
        queries = checks.check_queries(queries)
        k = checks.check_k(k)
        threshold = checks.check_threshold(threshold)
        weights = checks.check_weights(weights, len(queries)) if weights is not None else None
        params = checks.check_params(params)
        filters = checks.check_filters(filters or Filters())
        checks.check_flag("rerank", rerank)
        targets, explicit = self.targets(to)
        store, enc = self._reader()
        targets = usable_targets(store, targets, explicit)
        req = SearchRequest(queries, targets, k, list(weights or []), fusion, threshold, filters, params, mode=mode)
        if rerank:
            req.reranker = self.reranker(store, targets)
        return run_search(store, enc, req)

    def reranker(self, store=None, targets: Sequence[str] = ()):
        """The re-ranker (``reranker`` given to the engine, else the shipped one), loaded once; checked against
        the collection's model (code rerank.model_mismatch) when ``store`` is given."""
        from xsearch.encoders.reranker import load_reranker

        with self._lock:
            if self._reranker is None:
                self._reranker = load_reranker(self.reranker_path, self.device)
        if store is not None:
            for t in targets:
                for track in modalities.tracks_of(t):
                    if track in store.dims:
                        self._reranker.check_encoder(store.model_id, store.dims[track])
        return self._reranker

    def similar(self, path: str | Path, to: str | None = None, k: int | None = None) -> dict[str, list[Hit]]:
        """Files near a file: its stored vectors when it is indexed (same space), else the file embedded anew."""
        from xsearch.engine.embed import mean_vector
        from xsearch.engine.indexed_files import checked_file
        from xsearch.engine.query import check_query_file
        from xsearch.media.discover import require_utf8

        k = checks.check_k(k)
        if not isinstance(path, (str, os.PathLike)):
            raise UsageError(f"similar needs a file path, not {path!r}", code="query.invalid")
        p = Path(path).expanduser().absolute()
        require_utf8(p)  # such a path is never indexed, and the store cannot even look it up
        store, enc = self._reader()
        row = store.file(str(p))
        if row is not None:
            modality = row.modality
        else:
            if not p.exists():
                raise UsageError(f"{p} is not in the collection and does not exist", code="query.file_missing",
                                 path=str(p))
            modality = _modality_of(p)
            check_query_file(p, modality)
        target = modality if to is None else to
        targets, explicit = self.targets(target)
        targets = usable_targets(store, targets, explicit)
        req = SearchRequest([Query(modality, str(p))], targets, k, exclude_paths=(str(p),))
        single_track = target != "all" and not modalities.multi_track(modality) and not modalities.multi_track(target)
        if row is not None and single_track and enc.index_space(modality) == enc.index_space(target):
            req.k = k_for(store, targets, k)
            vec = mean_vector(store.file_vectors(row.id))
            hits = search_vectors(store, target, vec[None, :], [1.0], req)
            return {target: add_spans(hits, getattr(enc, "audio_window_s", 0) or 0)}
        if row is not None:  # read again: only while the path still leads to the file that was indexed
            checked_file(p, row)
        return run_search(store, enc, req)  # embedded anew (a video: its pictures and sound fused)

    def item(self, item_id: int) -> Hit:
        """One indexed item (an image, an audio window, a text passage) with its file's metadata."""
        item_id = checks.check_int("item_id", item_id, 0)
        hit = self.store().item(item_id)
        if hit is None:
            raise UsageError(f"no item {item_id} in the collection", code="item.missing", item_id=item_id)
        return hit

    def similar_item(self, item_id: int, to: str | None = None, k: int | None = None) -> dict[str, list[Hit]]:
        """"More like this": files near the file that holds ``item_id`` (see :meth:`similar`)."""
        return self.similar(self.item(item_id).path, to=to, k=k)

    def duplicates(self, modality: str = "image", threshold: float = 0.95, k: int = 8) -> list[dict]:
        """Pairs of different files whose vectors have cosine ≥ ``threshold``, best first."""
        threshold = checks.check_cosine_threshold(threshold)
        k = checks.check_int("k", k, 1)
        targets, _ = self.targets(checks.check_modality(modality))
        store, _ = self._reader()
        usable_targets(store, targets, True)
        pairs: dict[tuple[str, str], float] = {}
        paths: dict[int, str] = {}
        for item_ids, file_ids, vectors in store.iter_items(modality):
            hits_per_item = store.search_files(modality, vectors, min(k + 1, store.file_count(modality)),
                                               threshold=threshold)
            for file_id, hits in zip(file_ids.tolist(), hits_per_item):
                if file_id not in paths:
                    row = store.file_by_id(file_id)
                    paths[file_id] = row.path if row else ""
                a = paths[file_id]
                for h in hits:
                    if not a or h.path == a:
                        continue
                    key = tuple(sorted((a, h.path)))
                    pairs[key] = max(pairs.get(key, -1.0), float(h.score))
        return [{"a": a, "b": b, "score": s} for (a, b), s in sorted(pairs.items(), key=lambda kv: -kv[1])]

    # -- info ---------------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """The collection's stats (files / items / index per modality, model; ``tags``: files per tag; ``words``:
        lines and files per text track of the keyword index, ``text_tracks``: the opt-in ones it reads)."""
        store = self.store()  # raises what is missing: the collection, or (local) its lost manifest
        return {**store.stats(), "tags": store.tag_counts(), "words": store.keyword_counts(),
                "text_tracks": list(store.text_settings().get("text_tracks", [])),
                "model_fit": self.model_fit()}

    # -- browsing (xsearch.engine.browse) -------------------------------------------------------------------

    def browse(self, modality: str, *, order: str = "recent", offset: int = 0, limit: int = 24,
               seed: int = 0) -> tuple[int, list[Hit]]:
        """(files of ``modality``, one page of them): newest first, or shuffled with ``seed``."""
        from xsearch.engine import browse

        store = self.store()
        if modality not in store.modalities:
            return 0, []
        return browse.browse(store, modality, order=order, offset=offset, limit=limit, seed=seed)

    def examples(self, n: int = 4) -> list[str]:
        """Example queries drawn from the collection (its texts' first sentences, else tags, else file names)."""
        from xsearch.engine import browse

        return browse.examples(self.store(), n)

    def details(self, item_id: int) -> tuple[Hit, dict]:
        """An item and its folder, modification time and tags (for a preview)."""
        from xsearch.engine import browse

        hit = self.item(item_id)
        return hit, browse.details(self.store(), hit)

    @staticmethod
    def waveform(path: str, points: int = 160) -> dict:
        """A sound file's peak levels (0–1, ``points`` of them) and duration."""
        from xsearch.engine import browse

        return browse.waveform(path, points)

    # -- tags ---------------------------------------------------------------------------------------------

    def tag(self, labels: Sequence[str] | str, top: int = 3, min_score: float | None = None,
            on_progress: Callable[[int, int], None] | None = None, wait_s: float = 0.0,
            max_labels: int | None = None) -> dict:
        """Zero-shot tags: score every file against the text ``labels`` (prompt ensembling per modality, see
        xsearch.engine.tagging) and store each file's ``top`` best labels scoring at least ``min_score`` (cosine) as its
        tags, replacing earlier ones. ``search(filters=Filters(tag=...))`` then filters by them and ``stats()``
        counts them. ``on_progress(done, total)`` counts vectors scored (an exception it raises stops the run, nothing
        stored). ``max_labels``: a lower bound than tagging.MAX_LABELS. Returns a report (files, tagged, counts)."""
        from xsearch.engine.tagging import MAX_LABELS, check_labels, tag_files
        from xsearch.index import open_writer

        labels = check_labels(labels, min(MAX_LABELS, max_labels or MAX_LABELS))
        top = checks.check_int("top", top, 1)
        min_score = checks.check_number("min_score", min_score, None)
        checks.check_number("wait_s", wait_s, 0)
        store, enc = self._reader()  # the collection's model, checked
        with open_writer(self.uri, wait_s=wait_s) as writer:
            report = tag_files(writer, enc, labels, top=top, min_score=min_score, on_progress=on_progress)
        report["collection"] = store.uri
        return report

    @staticmethod
    def environment() -> dict:
        """Versions, device and FAISS GPU support of this process."""
        import importlib.metadata as md

        import faiss
        import torch

        import xsearch

        versions = {"xsearch": xsearch.__version__}
        for dist in ("torch", "torchaudio", "faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "open-clip-torch",
                     "transformers"):
            try:
                versions[dist] = md.version(dist)
            except md.PackageNotFoundError:
                pass
        cuda = torch.cuda.is_available()
        return {
            "versions": versions,
            "device": "cuda" if cuda else "cpu",
            "gpu": torch.cuda.get_device_name(0) if cuda else None,
            "faiss_gpus": int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0,
            "faiss_gpu_support": hasattr(faiss, "StandardGpuResources"),
        }


def _modality_of(path: Path) -> str:
    from xsearch.media import discover
    from xsearch.media.types import Skipped

    found = next(iter(discover(path)), None)
    if found is None or isinstance(found, Skipped):
        reason = found.reason if found is not None else "not a media file xsearch can read"
        raise UsageError(f"{path}: {reason}", code="query.bad_file", path=str(path))
    return found.modality


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
