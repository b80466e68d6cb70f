"""Where documents come from: the standard library, a folder, or a JSONL file.

Every source yields `RawDocument`s in a deterministic order (sorted walks), each either with its bytes
or with the reason it was rejected before reading (unreadable, too large, a symlink that leaves the root
or loops, ignored by the corpus's `.gitignore`, a malformed JSONL line). Content filters run later, in
`filters.py`.

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

from pathspec import GitIgnoreSpec, PathSpec

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
        if not isinstance(exc, FileNotFoundError):
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


def walk_files(root: Path, include: list[str], max_file_bytes: int,
               excluded_dirs: frozenset[str] = frozenset(),
               respect_gitignore: bool = False) -> Iterator[RawDocument]:
    """Sorted, symlink-safe walk of `root`, yielding the files that match `include`.

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

    def walk(directory: Path, rel_dir: str, rules: IgnoreRules | None) -> Iterator[RawDocument]:
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
                try:
                    data = full.read_bytes()
                except OSError as exc:
                    log.warning("cannot read %s: %s", full, exc)
                    yield RawDocument(rel, None, "unreadable")
                    continue
                yield RawDocument(rel, data)

    rules: IgnoreRules | None = None
    if respect_gitignore:
        exclude = read_ignore_file(root / ".git" / "info" / "exclude")
        rules = (("", exclude),) if exclude is not None else ()
    yield from walk(root, "", rules)


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
                              frozenset({".git", ".dvc"}), params.respect_gitignore)
    else:
        yield from read_jsonl(Path(str(params.path)), params.text_field, params.max_file_bytes)
