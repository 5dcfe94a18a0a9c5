"""Making catalog and vectors agree when a writer opens a collection, and the report of what that did.

Run by :meth:`Collection.verify_and_repair` (whenever a writer opens). The commit protocol already keeps catalog
and vectors in step; this catches damage it cannot prevent (a crash between saving vectors and committing the
catalog, a deleted or replaced vector file):

- vectors whose ids the catalog does not know (a crash after saving vectors, before the catalog commit) are
  removed;
- catalog items without a vector (a crash after a removal, a lost or deleted index file) get their files deleted
  from the catalog so that the next ``xsearch index`` embeds them again;
- vector files no commit refers to and temp files (left by an interrupted commit) are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import layout
from .exact import sidecar_path


@dataclass
class RepairReport:
    """What verify_and_repair found and fixed."""

    orphan_vectors_dropped: dict[str, int] = field(default_factory=dict)
    items_without_vectors: dict[str, int] = field(default_factory=dict)
    files_to_reembed: list[str] = field(default_factory=list)
    stale_files_removed: list[str] = field(default_factory=list)
    vector_files_replaced: dict[str, str] = field(default_factory=dict)  # modality -> why its file was unusable
    #: ``create`` found a catalog without a manifest and started afresh (the old catalog and vectors deleted: the
    #: model that made them is unknown, and two models' vectors must never mix). Not a repair: callers say it.
    manifest_lost: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.orphan_vectors_dropped or self.items_without_vectors or self.stale_files_removed
                    or self.vector_files_replaced)

    def __str__(self) -> str:
        if not self.changed:
            return "collection is consistent"
        parts = []
        if self.vector_files_replaced:
            parts.append("replaced unusable vector files ("
                         + ", ".join(f"{m}: {why}" for m, why in sorted(self.vector_files_replaced.items())) + ")")
        if self.orphan_vectors_dropped:
            parts.append("dropped vectors the catalog did not know ("
                         + ", ".join(f"{m}: {n}" for m, n in sorted(self.orphan_vectors_dropped.items())) + ")")
        if self.files_to_reembed:
            parts.append(f"{len(self.files_to_reembed)} file(s) had missing vectors and will be re-embedded by the "
                         "next indexing run")
        if self.stale_files_removed:
            parts.append(f"removed {len(self.stale_files_removed)} file(s) left by an interrupted commit")
        return "repaired the collection: " + "; ".join(parts)


def repair_collection(col) -> RepairReport:
    """Repair ``col`` (a Collection open for writing; see the module docstring) and commit any repair."""
    report = RepairReport()
    referenced = set(col.catalog.vector_files().values())
    referenced |= {sidecar_path(name).name for name in referenced}
    for stale in layout.stale_files(col.path, referenced):
        layout.unlink(col.path, stale)
        report.stale_files_removed.append(stale.name)
    dims = col.dims
    for modality in sorted(set(dims) | set(col.catalog.modalities())):
        catalog_ids = col.catalog.item_ids(modality)
        if modality in dims:
            index_ids = col.index(modality).ids()
            orphans = np.setdiff1d(index_ids, catalog_ids, assume_unique=True)
            if orphans.size:
                col.drop_orphans(modality, orphans)
                report.orphan_vectors_dropped[modality] = int(orphans.size)
            missing = np.setdiff1d(catalog_ids, index_ids, assume_unique=True)
        else:
            missing = catalog_ids
        if missing.size:
            report.items_without_vectors[modality] = int(missing.size)
            file_ids = col.catalog.file_ids_of_items(missing)
            for file_id in file_ids.tolist():
                row = col.catalog.get_file_by_id(file_id)
                if row is not None:
                    report.files_to_reembed.append(row.path)
            col.remove_files(file_ids.tolist())
    report.vector_files_replaced = col.replaced_files
    if col.has_changes:
        col.commit()
    return report
