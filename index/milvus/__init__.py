"""The ``milvus`` store: a collection in Milvus behind the storage protocol (index/store.py).

Two ways to name one (the ``-c`` argument, :mod:`.uri`):

- ``milvus-lite:PATH.db`` — embedded milvus-lite (a laptop, the tests). milvus-lite runs inside the process that
  opens the .db (one process per .db: another process that tries gets CollectionLockedError at once);
- ``milvus://HOST:PORT/NAME`` — a Milvus standalone or cluster; the token comes from ``$XSEARCH_STORE_TOKEN``
  (the CLI's ``--store-token`` sets it; the older ``$XSEARCH_MILVUS_TOKEN`` is read when it is unset).

Layout: one xsearch collection NAME (``xsearch`` in a .db) is a few Milvus collections:

``NAME__meta``     key → JSON: ``spec`` (model, dims, index per track, creation id), ``state:<seq>`` (one row per
                   write of the state: commit generation, next ids, counts, a commit in flight; the newest wins),
                   ``lease`` (a server's writer lease), ``journal:<n>`` (the file ids of the commit in flight, 4,000
                   a row);
``NAME__files``    one row per indexed file (what the local catalog's ``files`` table holds);
``NAME__<track>``  one row per item (an image, an audio window, a text passage) of a track: the vector, its file
                   id, offset, snippet, the generation that wrote it, and its file's metadata (path, file name,
                   size, mtime, width, height, duration) copied onto it, so that :class:`Filters` compile to one
                   Milvus filter expression and search needs no join;
``NAME__words``    where the Milvus has full-text search (milvus-lite 3.x, Milvus 2.5+): one row per line of words (OCR
                   lines, text passages, the file name) with the same metadata and a BM25 sparse vector (:mod:`.words`).

Modules, each depending only on those above it:

- :mod:`.uri` — parsing the collection argument;
- :mod:`.indexes` — FAISS factory strings → Milvus index types, build and search parameters;
- :mod:`.filters` — :class:`Filters` → a Milvus expression, and the same test in Python;
- :mod:`.connection` — one shared MilvusClient per collection argument, milvus-lite's in-process server;
- :mod:`.features` — what the Milvus at the other end supports (group-by, full ``like``, index types, full-text
  search), from its version;
- :mod:`.rows` — the Milvus schemas, and rows ↔ file records / hits;
- :mod:`.db` — the Milvus collections of one xsearch collection: every call (load-and-retry, coded errors);
- :mod:`.words` — the keyword index: its schema, keyword search (BM25 over character n-grams, then index/words.py's
  ranking);
- :mod:`.reader` — reads of the published generation, best-file-per-query search, the reader;
- :mod:`.writer_lock` — one writer per collection: an flock on milvus-lite, a lease row on a server;
- :mod:`.writer_reads` — a writer's reads, which see its own uncommitted changes;
- :mod:`.commit` — the journaled commit and the repair of one a crash interrupted;
- :mod:`.words_writer` — the writer's words: buffered per file, written by the commit with its generation;
- :mod:`.writer` — the writer: changes buffered in memory;
- :mod:`.backend` — :class:`~.backend.MilvusBackend`, what the store registry (index/__init__.py) loads.
"""
