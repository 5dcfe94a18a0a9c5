"""The local store: FAISS vector files and a SQLite catalog in one directory per collection."""

from .catalog import Catalog, FileRow, ItemRow
from .collection import Collection, RepairReport
from .vectors import VectorIndex, choose_factory

__all__ = ["Catalog", "Collection", "FileRow", "ItemRow", "RepairReport", "VectorIndex", "choose_factory"]
