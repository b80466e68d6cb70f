"""Where documents come from: the standard library, a folder, or a JSONL file.

Every source yields `RawDocument`s in a deterministic order (sorted walks), each either with its bytes
or with the reason it was rejected before reading (unreadable, too large, a symlink that leaves the root
or loops, a malformed JSONL line). Content filters run later, in `filters.py`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from codex_ml.params import DataParams

log = logging.getLogger(__name__)

# Directories of installed third-party code inside the stdlib tree: not the standard library.
EXCLUDED_STDLIB_DIRS = {"site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class RawDocument:
    path: str  # relative, POSIX separators: the document's stable identity (the split hashes it)
    data: bytes | None  # None when rejected
    rejected: str | None = None  # reason, when data is None


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"]).resolve()


def describe_source(params: DataParams) -> dict[str, str]:
    """What the corpus is, for metrics and the report."""
    if params.source == "stdlib":
        return {"kind": "stdlib", "root": str(stdlib_root()),
                "python": ".".join(map(str, sys.version_info[:3])),
                "implementation": sys.implementation.name}
    return {"kind": params.source, "path": str(params.path)}


@lru_cache(maxsize=64)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore-style glob as a regex over POSIX relative paths: `**/` spans zero or more folders,
    `*` and `?` stay within one path segment, `[...]` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def matches_any(rel: str, patterns: list[str]) -> bool:
    return any(glob_to_regex(p).match(rel) for p in patterns)


def walk_files(root: Path, include: list[str], max_file_bytes: int,
               excluded_dirs: frozenset[str] = frozenset()) -> Iterator[RawDocument]:
    """Sorted, symlink-safe walk of `root`, yielding the files that match `include`.

    Symlinks are followed only while they stay inside `root`; one that leaves it, dangles or loops
    is rejected with a reason instead of being read.
    """
    root = root.resolve()
    visited: set[str] = {str(root)}

    def walk(directory: Path, rel_dir: str) -> Iterator[RawDocument]:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            log.warning("cannot list %s: %s", directory, exc)
            yield RawDocument(rel_dir or ".", None, "unreadable")
            return
        for name in names:
            full = directory / name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(full)
            except OSError:
                yield RawDocument(rel, None, "unreadable")
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
                    if matches_any(rel, include) or target.is_dir():
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
                yield from walk(full, rel)
            elif stat.S_ISREG(st.st_mode) and matches_any(rel, include):
                if st.st_size > max_file_bytes:
                    yield RawDocument(rel, None, "too_large")
                    continue
                try:
                    data = full.read_bytes()
                except OSError as exc:
                    log.warning("cannot read %s: %s", full, exc)
                    yield RawDocument(rel, None, "unreadable")
                    continue
                yield RawDocument(rel, data)

    yield from walk(root, "")


def read_jsonl(path: Path, text_field: str, max_file_bytes: int) -> Iterator[RawDocument]:
    """One document per JSON line, text in `text_field`; the document's identity is its `path` or
    `id` field when it has one, otherwise `<file>:<line>`. Bad lines are rejected with a warning."""
    with open(path, "rb") as f:
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
            ident = record.get("path", record.get("id"))
            doc_id = str(ident) if isinstance(ident, (str, int)) and str(ident) else default_id
            try:
                data = record[text_field].encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes
                yield RawDocument(doc_id, None, "invalid_utf8")
                continue
            if len(data) > max_file_bytes:
                yield RawDocument(doc_id, None, "too_large")
                continue
            yield RawDocument(doc_id, data)


def iter_documents(params: DataParams) -> Iterator[RawDocument]:
    if params.source == "stdlib":
        yield from walk_files(stdlib_root(), params.include, params.max_file_bytes,
                              frozenset(EXCLUDED_STDLIB_DIRS))
    elif params.source == "dir":
        yield from walk_files(Path(str(params.path)), params.include, params.max_file_bytes,
                              frozenset({".git", ".dvc"}))
    else:
        yield from read_jsonl(Path(str(params.path)), params.text_field, params.max_file_bytes)
