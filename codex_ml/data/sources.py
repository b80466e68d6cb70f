"""Where documents come from: the standard library, a folder, a JSONL file (plain, .gz or .zst), or a
Hugging Face dataset (`hf_source.py`).

Every source yields `RawDocument`s in a deterministic order (sorted walks, sorted shards, rows in file
order), each either with its bytes or with the reason it was rejected before reading (unreadable, too
large, a symlink that leaves the root or loops, ignored by the corpus's `.gitignore`, a malformed JSONL
line or dataset row). Content filters run later, in `filters.py`.

For parallel and multi-machine runs, `iter_documents(params, rank, world_size)` yields contiguous part
`rank` of that sequence: the parts, concatenated in rank order, are exactly `iter_documents(params)`.
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

import gzip
import io
import json
import logging
import os
import stat
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import zstandard
from pathspec import GitIgnoreSpec, PathSpec

from codex_ml.data.documents import RawDocument, check_part, document_id, part_bounds
from codex_ml.params import DataParams
from codex_ml.runtime import StageError

log = logging.getLogger(__name__)

# Directories of installed third-party code inside the stdlib tree: not the standard library.
EXCLUDED_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__"}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def describe_source(params: DataParams) -> dict[str, Any]:
    """What the corpus is, for metrics and the report."""
    if params.source == "stdlib":
        return {"kind": "stdlib", "root": str(stdlib_root()),
                "python": ".".join(map(str, sys.version_info[:3])),
                "implementation": sys.implementation.name}
    if params.source == "hf":
        from codex_ml.data.hf_source import describe_hf

        return describe_hf(params)
    return {"kind": params.source, "path": str(params.path)}


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
    root = root.resolve()
    visited: set[str] = {str(root)}
    wanted = include_spec(tuple(include)).match_file

    def count_ignored(directory: Path, rel_dir: str) -> Iterator[RawDocument]:
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
            if is_dir and name not in excluded_dirs:
                yield from count_ignored(directory / name, rel)
            elif not is_dir and wanted(rel):
                yield RawDocument(rel, None, "gitignored")

    def walk(directory: Path, rel_dir: str, rules: IgnoreRules | None) -> Iterator[RawDocument | FileEntry]:
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
            full = directory / name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(full)
            except OSError:
                yield RawDocument(rel, None, "unreadable")
                continue
            if stat.S_ISDIR(st.st_mode) and name in excluded_dirs:
                continue
            # As git does: a symlink is a file to ignore rules, and an ignored folder is not entered,
            # so nothing inside it can be re-included by a later `!` pattern.
            if rules is not None and is_ignored(rules, rel, stat.S_ISDIR(st.st_mode)):
                if stat.S_ISDIR(st.st_mode):
                    yield from count_ignored(full, rel)
                elif wanted(rel):
                    yield RawDocument(rel, None, "gitignored")
                continue
            is_link = stat.S_ISLNK(st.st_mode)
            if is_link:
                try:
                    target = full.resolve(strict=True)
                except RuntimeError:  # a symlink loop (Python 3.11 raises RuntimeError for loops)
                    yield RawDocument(rel, None, "symlink_loop")
                    continue
                except OSError as exc:
                    reason = "symlink_loop" if exc.errno == 40 else "unreadable"  # 40: ELOOP
                    yield RawDocument(rel, None, reason)
                    continue
                if target != root and root not in target.parents:
                    if wanted(rel) or target.is_dir():
                        yield RawDocument(rel, None, "symlink_outside_root")
                    continue
                try:
                    st = os.stat(full)
                except OSError:
                    yield RawDocument(rel, None, "unreadable")
                    continue
            if stat.S_ISDIR(st.st_mode):
                if name in excluded_dirs:
                    continue
                real = str(full.resolve())
                if real in visited or (is_link and any(real == v or v.startswith(real + os.sep)
                                                       for v in visited)):
                    yield RawDocument(rel, None, "symlink_loop")
                    continue
                visited.add(real)
                yield from walk(full, rel, rules)
            elif stat.S_ISREG(st.st_mode) and wanted(rel):
                if st.st_size > max_file_bytes:
                    yield RawDocument(rel, None, "too_large")
                    continue
                yield FileEntry(rel, full, st.st_size)

    rules: IgnoreRules | None = None
    if respect_gitignore:
        exclude = read_ignore_file(root / ".git" / "info" / "exclude")
        rules = (("", exclude),) if exclude is not None else ()
    yield from walk(root, "", rules)


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
                try:
                    data = record[text_field].encode("utf-8")
                except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes
                    yield RawDocument(doc_id, None, "invalid_utf8")
                    continue
                if len(data) > max_file_bytes:
                    yield RawDocument(doc_id, None, "too_large")
                    continue
                yield RawDocument(doc_id, data)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise StageError(f"data.path: cannot read {path}: {exc}") from None


def iter_documents(params: DataParams, rank: int = 0, world_size: int = 1) -> Iterator[RawDocument]:
    """The source's documents, in its deterministic order; with `world_size` > 1, only those of
    contiguous part `rank`, such that parts 0..world_size-1 concatenated are exactly the whole sequence
    (the same documents and the same rejections). stdlib and dir cut the walk's list of files,
    balanced by bytes, and read only their own; hf cuts a folder's shard files (balanced by bytes) or a
    save_to_disk dataset's rows; a jsonl file is one part: rank 0 reads it all, the others nothing."""
    check_part(rank, world_size)
    if params.source == "stdlib":
        yield from walk_files(stdlib_root(), params.include, params.max_file_bytes,
                              frozenset(EXCLUDED_STDLIB_DIRS), rank=rank, world_size=world_size)
    elif params.source == "dir":
        yield from walk_files(Path(str(params.path)), params.include, params.max_file_bytes,
                              frozenset({".git", ".dvc"}), params.respect_gitignore, rank, world_size)
    elif params.source == "hf":
        from codex_ml.data.hf_source import read_hf  # imports datasets (and torch): only when used

        yield from read_hf(params, rank, world_size)
    elif rank == 0:
        yield from read_jsonl(Path(str(params.path)), params.text_field, params.max_file_bytes,
                              params.id_field)
