"""Walk a folder (or take one file) and classify each media file by extension and content."""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from xsearch.core.errors import MediaError
from xsearch.media import modalities as registry
from xsearch.media._io import os_error_reason
from xsearch.media.sniff import HEAD_BYTES, describe_content, sniff_media
from xsearch.media.types import MediaFile, Skipped

Found = MediaFile | Skipped

#: ``Refused.code`` of a file or folder whose name is not valid UTF-8 (no catalog can store its path as text).
NAME_NOT_UTF8 = "name_not_utf8"
#: ``Refused.code`` of a symlink whose target lies outside the walked folder (not followed unless asked).
LINK_OUTSIDE = "link_outside"
#: The ``ignored`` key of files without an extension.
NO_EXTENSION = "(no extension)"


@dataclass(frozen=True)
class Refused(Skipped):
    """A file (or folder) left out on purpose, not because it is broken; ``code`` says why (NAME_NOT_UTF8,
    LINK_OUTSIDE). Front ends use the code to give advice the reason must not (a flag to pass)."""

    code: str = ""


def is_utf8(text: str | os.PathLike) -> bool:
    """Whether a path (as os.fsdecode gives it) is valid UTF-8, i.e. has no surrogate-escaped bytes."""
    try:
        os.fspath(text).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(text: str | os.PathLike) -> str:
    """A path with its non-UTF-8 bytes written as ``\\xff`` escapes: printable, storable, one line."""
    text = os.fspath(text)
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def require_utf8(path: str | os.PathLike) -> None:
    """MediaError (``media.name_not_utf8``) for a path that is not valid UTF-8: it can never be indexed."""
    if not is_utf8(path):
        shown = escaped(path)
        raise MediaError(f"the path {shown} is not valid UTF-8, so it cannot be indexed; rename it",
                         code="media.name_not_utf8", path=shown)


def discover(
    root: str | os.PathLike,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    hidden: bool = False,
    modalities: Iterable[str] | None = None,
    follow_links: bool = True,
    ignored: MutableMapping[str, int] | None = None,
    skip_dirs: Iterable[str | os.PathLike] = (),
) -> Iterator[Found]:
    """Yield a MediaFile for every media file (of ``modalities``; default: every registered modality, see
    :mod:`xsearch.media.modalities`) under ``root``, in a stable order.

    ``root`` is a directory (walked recursively, following symlinks without looping) or one file.
    Files whose extension is not a media extension are ignored; media files that cannot be used
    (empty, content of another kind, unreadable, broken links, loops) come out as ``Skipped``.
    ``include`` / ``exclude`` are fnmatch globs matched against the path relative to ``root``
    (posix form) and against the base name; ``exclude`` also prunes directories.
    A ``root`` that does not exist raises MediaError at once.

    Under a directory ``root``, names that are not valid UTF-8 come out as :class:`Refused` (one for a folder,
    which is not walked); so do symlinks whose target resolves outside ``root`` when ``follow_links`` is False
    (the indexer's default; links that stay inside are followed either way). ``ignored``, when given, counts the
    files passed over for their extension, by lower-case extension (NO_EXTENSION for none); hidden files and
    files under hidden folders are not counted. Folders in ``skip_dirs`` (matched by identity, however they are
    reached; e.g. the collection being written, kept inside the folder it indexes) are neither walked nor
    reported.
    """
    known = registry.names()
    wanted = frozenset(known if modalities is None else modalities)
    unknown = wanted - set(known)
    if unknown:
        raise ValueError(f"unknown modalities: {sorted(unknown)}")
    root_path = Path(os.path.abspath(os.fspath(root)))
    if not root_path.exists():
        raise MediaError(f"path does not exist: {os.fspath(root)}")
    if root_path.is_dir():
        require_utf8(root_path)  # a walk is for indexing, and no path under this one could be stored
    walk = _Walk(root_path, _Globs(include), _Globs(exclude), hidden, wanted, follow_links, ignored,
                 _dir_keys(skip_dirs))
    return walk.run()


def _dir_keys(folders: Iterable[str | os.PathLike]) -> frozenset[tuple[int, int]]:
    """(st_dev, st_ino) of each existing folder."""
    keys = set()
    for folder in folders:
        try:
            st = os.stat(folder)
        except (OSError, ValueError):
            continue
        if stat.S_ISDIR(st.st_mode):
            keys.add((st.st_dev, st.st_ino))
    return frozenset(keys)


class _Globs:
    def __init__(self, patterns: Iterable[str]):
        self.patterns = tuple(patterns)

    def match(self, relative: str, name: str) -> bool:
        return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in self.patterns)


class _Walk:
    def __init__(self, root: Path, include: _Globs, exclude: _Globs, hidden: bool, wanted: frozenset,
                 follow_links: bool = True, ignored: MutableMapping[str, int] | None = None,
                 skip_keys: frozenset[tuple[int, int]] = frozenset()):
        self.root = root
        self.skip_keys = skip_keys
        self.include = include
        self.exclude = exclude
        self.hidden = hidden
        self.wanted = wanted
        self.follow_links = follow_links
        self.ignored = ignored
        self.real_root = os.path.realpath(root)

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
                found = self._file(path, st, explicit=False, relative=relative) \
                    if self._selected(path, relative) else None
                if found is not None:
                    yield found
                continue
            if self.exclude.match(relative, name) or (st.st_dev, st.st_ino) in self.skip_keys:
                continue
            refused = self._refused(path, folder=True)
            if refused is not None:
                yield refused
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

    def _refused(self, path: Path, *, folder: bool) -> Refused | None:
        """Why a walked name is left out on purpose (not UTF-8, a link out of the root), or None."""
        if not is_utf8(path.name):
            what, hint = ("folder", "rename it to index what it holds") if folder else ("file", "rename it to index it")
            return Refused(path, f"{what} name is not valid UTF-8 ({escaped(path.name)}); {hint}", NAME_NOT_UTF8)
        if not self.follow_links and os.path.islink(path):
            target = os.path.realpath(path)
            if target != self.real_root and not target.startswith(self.real_root.rstrip(os.sep) + os.sep):
                return Refused(path, f"symlink leaves the indexed folder (target {escaped(target)})", LINK_OUTSIDE)
        return None

    def _file(self, path: Path, st: os.stat_result, *, explicit: bool, relative: str = "") -> Found | None:
        """Classify one file; None means "not a media file, ignore it"."""
        suffix = path.suffix.lower()
        by_extension = registry.for_extension(suffix)
        if by_extension is None and not explicit:
            if self.ignored is not None and not any(part.startswith(".") for part in relative.split("/")):
                key = escaped(suffix) if suffix else NO_EXTENSION
                self.ignored[key] = self.ignored.get(key, 0) + 1
            return None
        # A file whose extension names an unwanted modality is not worth a report line.
        report = by_extension is None or by_extension.name in self.wanted
        refused = None if explicit else self._refused(path, folder=False)
        if refused is not None:
            return refused if report else None
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
        if modality is None:  # no sniffer knows the content: the extension decides
            if by_extension is None:
                return Skipped(path, f"not a supported {registry.labels()} file (extension {suffix or 'none'})")
            if by_extension.sniff is not None:  # its own sniffer did not recognise it either
                reason = f"content is {describe_content(head)}, not {by_extension.name} (extension {suffix})"
                return Skipped(path, reason) if report else None
            problem = by_extension.check_content(head) if by_extension.check_content is not None else None
            if problem:
                return Skipped(path, problem) if report else None
            modality = by_extension.name
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
