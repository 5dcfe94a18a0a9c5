"""Walk a folder (or take one file) and classify each media file by extension and content."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from xsearch.errors import MediaError
from xsearch.media._io import os_error_reason
from xsearch.media.sniff import (
    HEAD_BYTES,
    describe_content,
    has_text_bom,
    modality_for_extension,
    sniff_media,
)
from xsearch.media.types import MODALITIES, TEXT, MediaFile, Skipped

Found = MediaFile | Skipped


def discover(
    root: str | os.PathLike,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    hidden: bool = False,
    modalities: Iterable[str] = MODALITIES,
) -> Iterator[Found]:
    """Yield a MediaFile for every image, audio and text file under ``root``, in a stable order.

    ``root`` is a directory (walked recursively, following symlinks without looping) or one file.
    Files whose extension is not a media extension are ignored; media files that cannot be used
    (empty, content of another kind, unreadable, broken links, loops) come out as ``Skipped``.
    ``include`` / ``exclude`` are fnmatch globs matched against the path relative to ``root``
    (posix form) and against the base name; ``exclude`` also prunes directories.
    A ``root`` that does not exist raises MediaError at once.
    """
    wanted = frozenset(modalities)
    unknown = wanted - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modalities: {sorted(unknown)}")
    root_path = Path(os.path.abspath(os.fspath(root)))
    if not root_path.exists():
        raise MediaError(f"path does not exist: {os.fspath(root)}")
    walk = _Walk(root_path, _Globs(include), _Globs(exclude), hidden, wanted)
    return walk.run()


class _Globs:
    def __init__(self, patterns: Iterable[str]):
        self.patterns = tuple(patterns)

    def match(self, relative: str, name: str) -> bool:
        return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in self.patterns)


class _Walk:
    def __init__(self, root: Path, include: _Globs, exclude: _Globs, hidden: bool, wanted: frozenset):
        self.root = root
        self.include = include
        self.exclude = exclude
        self.hidden = hidden
        self.wanted = wanted

    def run(self) -> Iterator[Found]:
        try:
            st = os.stat(self.root)
        except OSError as exc:
            yield Skipped(self.root, os_error_reason(exc))
            return
        if not stat.S_ISDIR(st.st_mode):
            found = self._file(self.root, st, explicit=True) if self._selected(self.root) else None
            if found is not None:
                yield found
            return
        yield from self._tree(st)

    def _tree(self, root_stat: os.stat_result) -> Iterator[Found]:
        root_key = (root_stat.st_dev, root_stat.st_ino)
        walked = {root_key: self.root}  # every directory walked so far, so none is walked twice
        listing = self._list(self.root)
        if isinstance(listing, Skipped):
            yield listing
            return
        # Depth-first: one (directory, remaining sorted names, (st_dev, st_ino)) per open directory.
        open_dirs = [(self.root, iter(listing), root_key)]
        while open_dirs:
            directory, names, _ = open_dirs[-1]
            name = next(names, None)
            if name is None:
                open_dirs.pop()
                continue
            if name.startswith(".") and not self.hidden:
                continue
            path = directory / name
            relative = path.relative_to(self.root).as_posix()
            try:
                st = os.stat(path)
            except OSError as exc:
                if self._selected(path, relative):
                    yield Skipped(path, self._stat_failure(path, exc))
                continue
            if not stat.S_ISDIR(st.st_mode):
                found = self._file(path, st, explicit=False) if self._selected(path, relative) else None
                if found is not None:
                    yield found
                continue
            if self.exclude.match(relative, name):
                continue
            key = (st.st_dev, st.st_ino)
            if any(key == open_key for _, _, open_key in open_dirs):
                yield Skipped(path, "symlink loop")  # a link back to a directory we are inside
            elif key in walked:
                yield Skipped(path, f"directory already walked as {walked[key]}")
            else:
                walked[key] = path
                listing = self._list(path)
                if isinstance(listing, Skipped):
                    yield listing
                else:
                    open_dirs.append((path, iter(listing), key))

    def _selected(self, path: Path, relative: str | None = None) -> bool:
        relative = path.name if relative is None else relative
        if self.exclude.match(relative, path.name):
            return False
        return not self.include.patterns or self.include.match(relative, path.name)

    @staticmethod
    def _list(directory: Path) -> list[str] | Skipped:
        try:
            with os.scandir(directory) as entries:
                return sorted(entry.name for entry in entries)
        except OSError as exc:
            return Skipped(directory, os_error_reason(exc))

    @staticmethod
    def _stat_failure(path: Path, exc: OSError) -> str:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if isinstance(exc, FileNotFoundError) and path.is_symlink():
            try:
                return f"broken symlink (target {os.readlink(path)} does not exist)"
            except OSError:
                return "broken symlink (target does not exist)"
        return os_error_reason(exc)

    def _file(self, path: Path, st: os.stat_result, *, explicit: bool) -> Found | None:
        """Classify one file; None means "not a media file, ignore it"."""
        suffix = path.suffix.lower()
        by_extension = modality_for_extension(suffix)
        if by_extension is None and not explicit:
            return None
        # A file whose extension names an unwanted modality is not worth a report line.
        report = by_extension is None or by_extension in self.wanted
        if not stat.S_ISREG(st.st_mode):
            return Skipped(path, "not a regular file") if report else None
        if st.st_size == 0:
            return Skipped(path, "empty file (0 bytes)") if report else None
        try:
            with open(path, "rb") as handle:
                head = handle.read(HEAD_BYTES)
        except OSError as exc:
            return Skipped(path, os_error_reason(exc)) if report else None
        modality = sniff_media(head)
        if modality is None:
            if by_extension is None:
                return Skipped(
                    path, f"not a supported image, audio or text file (extension {suffix or 'none'})"
                )
            if by_extension != TEXT:
                reason = f"content is {describe_content(head)}, not {by_extension} (extension {suffix})"
                return Skipped(path, reason) if report else None
            if b"\x00" in head and not has_text_bom(head):
                return Skipped(path, "binary content, not text") if report else None
            modality = TEXT
        if modality not in self.wanted:
            return None
        return MediaFile(path=path, modality=modality, size=st.st_size, mtime_ns=st.st_mtime_ns)


def in_scope(root: str | os.PathLike, path: str | os.PathLike, *, include: Iterable[str] = (),
             exclude: Iterable[str] = (), hidden: bool = False) -> bool:
    """Would :func:`discover` with these options look at ``path`` under ``root``?

    The indexer prunes only catalog entries in scope: a file that an ``include`` / ``exclude`` / hidden rule
    left out of this walk was not looked at, so it is not "gone".
    """
    root_path = Path(os.path.abspath(os.fspath(root)))
    p = Path(os.fspath(path))
    try:
        relative = p.relative_to(root_path)
    except ValueError:
        return p == root_path
    parts = relative.parts
    if not parts:
        return True
    if not hidden and any(part.startswith(".") for part in parts):
        return False
    exclude_globs, include_globs = _Globs(exclude), _Globs(include)
    for depth in range(1, len(parts)):
        if exclude_globs.match("/".join(parts[:depth]), parts[depth - 1]):
            return False
    rel, name = relative.as_posix(), parts[-1]
    if exclude_globs.match(rel, name):
        return False
    return not include_globs.patterns or include_globs.match(rel, name)
