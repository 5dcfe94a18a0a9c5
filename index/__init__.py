"""xsearch.index: vectors, ids and metadata of a collection — never models (a model is an opaque model_id).

Heavy imports (faiss) happen when an index is created or loaded, not when this package is imported.
"""
