"""The local store: FAISS vector files and a SQLite catalog in one directory per collection."""

from .budget import choose_factory
from .catalog import Catalog, ItemRow
from .collection import Collection
from .repair import RepairReport
from .vectors import VectorIndex

__all__ = ["Catalog", "Collection", "ItemRow", "RepairReport", "VectorIndex", "choose_factory"]
