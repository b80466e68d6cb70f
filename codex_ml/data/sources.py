"""Where documents come from: the standard library, a folder, a JSONL file (plain, .gz or .zst), or a
Hugging Face dataset (`hf_source.py`).

Every source yields `RawDocument`s in a deterministic order (sorted walks, sorted shards, rows in file
order), each either with its bytes or with the reason it was rejected before reading (unreadable, too
large, a symlink that leaves the root or loops, ignored by the corpus's `.gitignore`, a malformed JSONL
line or dataset row). Content filters run later, in `filters.py`.

`open_source(params)` resolves `data.source` once into a `Source` (documents.py), the one place that
tells the sources apart. For parallel and multi-machine runs, `source.documents(rank, world_size)`
yields contiguous part `rank` of that sequence: the parts, concatenated in rank order, are exactly
`source.documents()`.
A walk is cheap next to reading (names and sizes only), so every part walks the whole tree, cuts the
list where the others do (balanced by bytes, `part_bounds`) and reads only its own files.

`data.include` selects files of a walk (stdlib, dir). It is not applied to jsonl or hf records: their
identity is a field's value (a `path` column, say), not a file the walk found, and a record dropped
because its id does not end in `.py` would be a silent loss; filter such corpora before.

Path patterns are pathspec's, not ours: `data.include` is a list of gitignore-style patterns, and a
`dir` source (with `data.respect_gitignore`) skips what git would: every `.gitignore` in the tree,
each relative to its folder, the deepest deciding, plus `.git/info/exclude`. pathspec implements
gitignore's corner cases (`**`, `!` negation, `build/`, anchored `/x`, escapes) as git does them,
which a hand-written glob translator would have to relearn one bug at a time; tests/test_prepare.py
checks the files kept against `git ls-files` on a real repository. Git's rules that depend on
the walk are kept here: an ignored folder is not entered (a `!` cannot re-include a file inside it),
and a symlink is a file to ignore rules. Not read, on purpose: the user's global excludes
(`core.excludesFile`), which would make the corpus depend on the machine, `.gitignore` files above
`data.path`, and git's index (a file force-added despite a pattern is skipped here, kept by git).
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import logging
import os
import stat
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import zstandard
from pathspec import GitIgnoreSpec, PathSpec

from codex_ml.data.documents import RawDocument, Source, check_part, document_id, part_bounds
from codex_ml.data.licenses import LICENSE_COLUMNS, value_license
from codex_ml.params import DataParams
from codex_ml.runtime import StageError

log = logging.getLogger(__name__)

# Directories of installed third-party code inside the stdlib tree: not the standard library.
EXCLUDED_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


@lru_cache(maxsize=64)
def include_spec(patterns: tuple[str, ...]) -> PathSpec:
    """`data.include` as gitignore-style patterns, last match wins (so `!` excludes): `**/*.py` and
    `*.py` match at any depth, `/*.py` only at the root, `src/` and `src/**` everything under src."""
    return PathSpec.from_lines("gitignore", patterns)


# The ignore files in force in one folder, lowest precedence first: `.git/info/exclude`, then the
# root's `.gitignore`, then each deeper folder's. Each is (folder relative to the root, its patterns).
IgnoreRules = tuple[tuple[str, GitIgnoreSpec], ...]


def read_ignore_file(path: Path) -> GitIgnoreSpec | None:
    """The patterns of one ignore file; None when there is none. A symlinked one is not read (git
    stopped following them in 2.32, and it could point out of the corpus)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        lines = path.read_bytes().decode("utf-8", "surrogateescape").splitlines()
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError | NotADirectoryError):  # none, or .git is a file
            log.warning("cannot read %s: %s; its patterns are not applied", path, exc)
        return None
    return GitIgnoreSpec.from_lines(lines)


def is_ignored(rules: IgnoreRules, rel: str, is_dir: bool) -> bool:
    """Git's verdict on one path whose parent folders are not ignored: the deepest ignore file with a
    matching pattern decides, and in it the last matching pattern (pathspec's GitIgnoreSpec)."""
    path = rel + "/" if is_dir else rel  # a trailing slash lets directory-only patterns (`build/`) match
    for base, spec in reversed(rules):
        verdict = spec.check_file(path[len(base) + 1:] if base else path).include
        if verdict is not None:
            return verdict
    return False


@dataclass(frozen=True)
class FileEntry:
    """A file the walk found and will read: its identity, where it is, and its size from the walk's stat."""

    path: str
    full: Path
    size: int


Entry = RawDocument | FileEntry  # what a walk yields: a file to read, or a rejection


def walk_entries(root: Path, include: list[str], max_file_bytes: int,
                 excluded_dirs: frozenset[str] = frozenset(),
                 respect_gitignore: bool = False) -> Iterator[RawDocument | FileEntry]:
    """Sorted, symlink-safe walk of `root`, yielding the files that match `include`, unread: a
    `FileEntry` for each file to read, a rejected `RawDocument` for each one that will not be.

    Symlinks are followed only while they stay inside `root`; one that leaves it, dangles or loops
    is rejected with a reason instead of being read. With `respect_gitignore`, what the corpus's
    `.gitignore` files and `.git/info/exclude` ignore is rejected as `gitignored` without being read;
    an ignored folder is listed only to count the files in it that `include` matches.
    """
    walk = Walk(root.resolve(), include_spec(tuple(include)).match_file, max_file_bytes, excluded_dirs)
    rules: IgnoreRules | None = None
    if respect_gitignore:
        exclude = read_ignore_file(walk.root / ".git" / "info" / "exclude")
        rules = (("", exclude),) if exclude is not None else ()
    yield from walk.folder(walk.root, "", rules)


class Walk:
    """One walk of `root` (walk_entries): what it yields for each folder and entry it meets, and the
    real folders it has entered, to refuse a symlink that loops back into one."""

    def __init__(self, root: Path, wanted: Callable[[str], bool], max_file_bytes: int,
                 excluded_dirs: frozenset[str]) -> None:
        self.root, self.wanted, self.max_file_bytes = root, wanted, max_file_bytes
        self.excluded_dirs = excluded_dirs
        self.visited: set[str] = {str(root)}

    def folder(self, directory: Path, rel_dir: str, rules: IgnoreRules | None) -> Iterator[Entry]:
        """Every entry of `directory`, sorted by name; its `.gitignore` joins `rules` for them."""
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            log.warning("cannot list %s: %s", directory, exc)
            yield RawDocument(rel_dir or ".", None, "unreadable")
            return
        if rules is not None and ".gitignore" in names:
            spec = read_ignore_file(directory / ".gitignore")
            rules = (*rules, (rel_dir, spec)) if spec is not None else rules
        for name in names:
            yield from self.entry(directory / name, f"{rel_dir}/{name}" if rel_dir else name, rules)

    def entry(self, full: Path, rel: str, rules: IgnoreRules | None) -> Iterator[Entry]:
        try:
            st = os.lstat(full)
        except OSError:
            yield RawDocument(rel, None, "unreadable")
            return
        if stat.S_ISDIR(st.st_mode) and full.name in self.excluded_dirs:
            return
        # As git does: a symlink is a file to ignore rules, and an ignored folder is not entered,
        # so nothing inside it can be re-included by a later `!` pattern.
        if rules is not None and is_ignored(rules, rel, stat.S_ISDIR(st.st_mode)):
            if stat.S_ISDIR(st.st_mode):
                yield from self.count_ignored(full, rel)
            elif self.wanted(rel):
                yield RawDocument(rel, None, "gitignored")
            return
        is_link = stat.S_ISLNK(st.st_mode)
        if is_link:
            followed = self.follow(full, rel)
            if isinstance(followed, RawDocument):
                yield followed
            if not isinstance(followed, os.stat_result):  # rejected, or out of the root and not wanted
                return
            st = followed
        if stat.S_ISDIR(st.st_mode):
            yield from self.subfolder(full, rel, rules, is_link)
        elif stat.S_ISREG(st.st_mode) and self.wanted(rel):
            yield (RawDocument(rel, None, "too_large") if st.st_size > self.max_file_bytes
                   else FileEntry(rel, full, st.st_size))

    def follow(self, link: Path, rel: str) -> os.stat_result | RawDocument | None:
        """What a symlink points to (its stat) while that stays inside the root; else its rejection, or
        None for one pointing out of the root at a file `include` does not want."""
        try:
            target = link.resolve(strict=True)
        except RuntimeError:  # a symlink loop (Python 3.11 raises RuntimeError for loops)
            return RawDocument(rel, None, "symlink_loop")
        except OSError as exc:
            return RawDocument(rel, None, "symlink_loop" if exc.errno == errno.ELOOP else "unreadable")
        if target != self.root and self.root not in target.parents:
            wanted = self.wanted(rel) or target.is_dir()
            return RawDocument(rel, None, "symlink_outside_root") if wanted else None
        try:
            return os.stat(link)
        except OSError:
            return RawDocument(rel, None, "unreadable")

    def subfolder(self, full: Path, rel: str, rules: IgnoreRules | None, is_link: bool) -> Iterator[Entry]:
        """A folder entered once: a symlink to a folder already entered, or to one above it, loops."""
        if full.name in self.excluded_dirs:
            return
        real = str(full.resolve())
        if real in self.visited or (is_link and any(real == v or v.startswith(real + os.sep)
                                                    for v in self.visited)):
            yield RawDocument(rel, None, "symlink_loop")
            return
        self.visited.add(real)
        yield from self.folder(full, rel, rules)

    def count_ignored(self, directory: Path, rel_dir: str) -> Iterator[RawDocument]:
        """Inside an ignored folder: a `gitignored` rejection for each file `include` matches."""
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            rel = f"{rel_dir}/{name}"
            try:
                is_dir = stat.S_ISDIR(os.lstat(directory / name).st_mode)  # symlinks are not followed
            except OSError:
                continue
            if is_dir and name not in self.excluded_dirs:
                yield from self.count_ignored(directory / name, rel)
            elif not is_dir and self.wanted(rel):
                yield RawDocument(rel, None, "gitignored")


def read_entry(entry: RawDocument | FileEntry) -> RawDocument:
    """The document of one walk entry: a rejection as it is, a file with its bytes (or `unreadable`)."""
    if isinstance(entry, RawDocument):
        return entry
    try:
        data = entry.full.read_bytes()
    except OSError as exc:
        log.warning("cannot read %s: %s", entry.full, exc)
        return RawDocument(entry.path, None, "unreadable")
    return RawDocument(entry.path, data)


def walk_files(root: Path, include: list[str], max_file_bytes: int,
               excluded_dirs: frozenset[str] = frozenset(), respect_gitignore: bool = False,
               rank: int = 0, world_size: int = 1) -> Iterator[RawDocument]:
    """The documents of `walk_entries`, read, for contiguous part `rank` of `world_size`. One part
    reads as it walks; with several, every part walks the whole tree (names and sizes only), cuts the
    list of entries at the same places, balanced by bytes, and reads only the files of its own part."""
    entries = walk_entries(root, include, max_file_bytes, excluded_dirs, respect_gitignore)
    if world_size == 1:
        yield from map(read_entry, entries)
        return
    listed = list(entries)
    start, stop = part_bounds([e.size + 1 if isinstance(e, FileEntry) else 1 for e in listed],
                              rank, world_size)
    yield from map(read_entry, listed[start:stop])


def open_lines(path: Path) -> io.BufferedIOBase:
    """A JSONL file's bytes, decompressed as they are read when its name ends in `.gz` or `.zst`
    (every zstd frame, as pzstd and `zstd -T` write several)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        # the reader owns the file (closefd): closing what this returns closes it
        reader = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"),  # noqa: SIM115
                                                            read_across_frames=True,
                                                            closefd=True)
        return io.BufferedReader(reader)  # a raw stream with readinto: lines are buffered
    return open(path, "rb")


def read_jsonl(path: Path, text_field: str, max_file_bytes: int,
               id_field: str | None = None) -> Iterator[RawDocument]:
    """One document per JSON line, text in `text_field`; the document's identity is its `id_field`
    (by default its `path` field, or else its `id` field) when it has one, otherwise `<file>:<line>`.
    Bad lines are rejected with a warning. A `.gz` or `.zst` file is decompressed as it streams; one
    that is corrupt or cut short stops the stage with an error naming it."""
    try:
        with open_lines(path) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                default_id = f"{path.name}:{lineno}"
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    log.warning("%s line %d: not valid JSON (%s); skipped", path, lineno, exc)
                    yield RawDocument(default_id, None, "malformed_jsonl")
                    continue
                if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                    log.warning("%s line %d: expected an object with a string %r field; skipped",
                                path, lineno, text_field)
                    yield RawDocument(default_id, None, "malformed_jsonl")
                    continue
                ident = record.get(id_field) if id_field else record.get("path", record.get("id"))
                doc_id = document_id(ident, default_id)
                column = next((c for c in LICENSE_COLUMNS if c in record), None)
                found = (value_license(record[column]), column) if column else None
                try:
                    data = record[text_field].encode("utf-8")
                except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes
                    yield RawDocument(doc_id, None, "invalid_utf8")
                    continue
                if len(data) > max_file_bytes:
                    yield RawDocument(doc_id, None, "too_large")
                    continue
                yield RawDocument(doc_id, data, license=found)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise StageError(f"data.path: cannot read {path}: {exc}") from None


@dataclass(frozen=True)
class WalkSource(Source):
    """A folder walked for files (stdlib, dir): its parts cut the walk's list of files, balanced by
    bytes, and each reads only its own."""

    root: Path
    params: DataParams
    excluded_dirs: frozenset[str]
    respect_gitignore: bool
    about: dict[str, Any]  # describe()'s

    def describe(self) -> dict[str, Any]:
        return self.about

    def license_root(self) -> Path | None:
        return self.root

    def documents(self, rank: int = 0, world_size: int = 1) -> Iterator[RawDocument]:
        check_part(rank, world_size)
        return walk_files(self.root, self.params.include, self.params.max_file_bytes, self.excluded_dirs,
                          self.respect_gitignore, rank, world_size)


@dataclass(frozen=True)
class JsonlSource(Source):
    """One JSONL file (plain, .gz or .zst): one part, so rank 0 reads it all and the others nothing."""

    path: Path
    params: DataParams

    def describe(self) -> dict[str, Any]:
        return {"kind": "jsonl", "path": str(self.params.path)}

    def documents(self, rank: int = 0, world_size: int = 1) -> Iterator[RawDocument]:
        check_part(rank, world_size)
        if rank != 0:
            return iter(())
        return read_jsonl(self.path, self.params.text_field, self.params.max_file_bytes, self.params.id_field)


def open_source(params: DataParams) -> Source:
    """`data.source` resolved once: its path checked (a hub dataset found in the local cache), or one
    StageError naming the key to fix. The one place that tells the sources apart."""
    if params.source == "stdlib":
        root = stdlib_root()
        about = {"kind": "stdlib", "root": str(root), "python": ".".join(map(str, sys.version_info[:3])),
                 "implementation": sys.implementation.name}
        return WalkSource(root, params, frozenset(EXCLUDED_STDLIB_DIRS), False, about)
    if params.source == "hf":
        from codex_ml.data.hf_source import HfSource  # imports datasets (and torch): only when used

        return HfSource.open(params)
    path = Path(str(params.path))
    if params.source == "dir":
        if not path.is_dir():
            raise StageError(f"data.path: {path} is not a folder (data.source is 'dir')")
        return WalkSource(path, params, frozenset({".git", ".dvc"}), params.respect_gitignore,
                          {"kind": "dir", "path": str(params.path)})
    if not path.is_file():
        raise StageError(f"data.path: {path} is not a file (data.source is 'jsonl')")
    return JsonlSource(path, params)
