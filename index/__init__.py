"""xsearch.index: vectors, ids and metadata of a collection — never models (a model is an opaque model_id).

Heavy imports (faiss) happen when an index is created or loaded, not when this package is imported.
"""

from .catalog import Catalog, FileRow, ItemRow
from .collection import Collection, RepairReport
from .locks import close_inherited_lock_fds
from .vectors import VectorIndex, choose_factory

__all__ = ["Catalog", "Collection", "FileRow", "ItemRow", "RepairReport", "VectorIndex", "choose_factory",
           "close_inherited_lock_fds"]
