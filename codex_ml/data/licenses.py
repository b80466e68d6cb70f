"""The license of each document, as an SPDX expression or `unknown`, and where it was found.

A document's license comes from, in this order:

1. an `SPDX-License-Identifier:` line in its first 4 KiB (REUSE's and the Linux kernel's file header);
2. walking up its folders toward the corpus root, at each folder: the installed distribution whose
   `*.dist-info/RECORD` lists the file (its `METADATA`: License-Expression, else the license files in
   the dist-info, else its license classifiers, else a License field that is an SPDX expression),
   then the folder's own license files (LICENSE*, LICENCE*, COPYING*, NOTICE*), read by the detector;
3. for a dataset (`data.source: hf`, jsonl), the record's license column (`value_license`);
4. otherwise `unknown`.

Licenses are found per folder and per header, never by running the detector over every document:
each folder is listed once, each license file read and detected once (`LicenseResolver` caches them),
so a document costs a scan of its first 4 KiB and a few dictionary lookups. The answer depends only on
the document's path, its bytes and the files of its folders, so it is the same for any worker count.

The detector is licenseclassifier, pure Python and with no dependencies, chosen against ScanCode
toolkit and the other candidates by benchmarks/bench_licenses.py (docs/licenses.md). Every expression
is parsed and normalised by license-expression against the SPDX license list (`MIT AND Apache-2.0`,
`GPL-3.0-or-later`); `LicenseRef-*` ids are kept as they are.
"""

from __future__ import annotations

import csv
import email.parser
import io
import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from license_expression import ExpressionError, LicenseSymbol, LicenseWithExceptionSymbol, get_spdx_licensing
from licenseclassifier import identify_license

from codex_ml.data.license_tables import CLASSIFIER_SPDX, PERMISSIVE

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
DETECTOR = f"licenseclassifier {metadata.version('licenseclassifier')}"
HEADER_BYTES = 4096  # where an SPDX-License-Identifier line is looked for
LICENSE_FILE_BYTES = 1 << 20  # a license file is read up to this size
SPDX_LICENSE_LIST = get_spdx_licensing()

_HEADER = re.compile(rb"SPDX-License-Identifier:[ \t]*([^\r\n]+)")
_HEADER_END = re.compile(r"\s*(\*/|-->|\*\)|#\}|\"\"\"|''').*$")  # a comment closed on the same line
_LICENSE_NAME = re.compile(r"^(licen[cs]e|copying|notice)([-._].*)?$", re.IGNORECASE)
_NOT_LICENSE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pyd", ".dll", ".html", ".css", ".js")


class LicenseError(ValueError):
    """An expression that is not a valid SPDX license expression."""


@dataclass(frozen=True)
class License:
    expression: str  # a normalised SPDX expression, or "unknown"
    source: str  # "header", "file:<path>", "package:<dist-info folder>", "column:<name>" or "none"


NONE = License(UNKNOWN, "none")
# a JSONL record's or dataset row's own license, the first of these columns it has (The Stack's
# `detected_licenses` is a list of SPDX ids)
LICENSE_COLUMNS = ("license", "licenses", "detected_licenses")


def normalize(expression: str) -> str:
    """`expression` as license-expression renders it (canonical case, `+` as `-or-later`); a
    `LicenseError` naming what is wrong when it is not an SPDX expression of known ids or LicenseRef-s."""
    try:
        parsed = SPDX_LICENSE_LIST.parse(expression, strict=True)
    except ExpressionError as exc:
        raise LicenseError(f"{expression!r} is not an SPDX license expression: {exc}") from None
    if parsed is None:
        raise LicenseError("an empty license expression")
    unknown = [k for k in SPDX_LICENSE_LIST.unknown_license_keys(parsed)
               if not k.startswith(("LicenseRef-", "DocumentRef-"))]
    if unknown:
        raise LicenseError(f"{expression!r}: not on the SPDX license list: {', '.join(unknown)}")
    return str(parsed.render())


def combine(expressions: list[str]) -> str | None:
    """The AND of `expressions`, each once, in the order given; None when there are none."""
    unique = list(dict.fromkeys(expressions))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return normalize(" AND ".join(f"({e})" if " " in e else e for e in unique))


def header_license(data: bytes) -> str | None:
    """The expression of the `SPDX-License-Identifier:` lines in the first 4 KiB of a document (several
    are joined with AND), or None. A line whose expression does not parse is ignored, with a log line."""
    found = []
    for match in _HEADER.finditer(data[:HEADER_BYTES]):
        raw = _HEADER_END.sub("", match.group(1).decode("utf-8", "replace")).strip()
        try:
            found.append(normalize(raw))
        except LicenseError as exc:
            log.debug("an SPDX-License-Identifier line is ignored: %s", exc)
    return combine(found)


def detect_text(text: str) -> str | None:
    """The licenses the detector finds in a license file's text, in the order they appear, joined
    with AND; None when it finds none."""
    ids = [m.id for m in sorted(identify_license(text), key=lambda m: (m.start, m.id))]
    valid = []
    for spdx_id in ids:
        try:
            valid.append(normalize(spdx_id))
        except LicenseError:
            log.debug("the detector's %r is not on this SPDX license list; ignored", spdx_id)
    return combine(valid)


def is_license_file(name: str) -> bool:
    """LICENSE, LICENCE, COPYING, NOTICE, with any suffix (LICENSE.txt, LICENSE-MIT, COPYING.LESSER),
    any case; not a module or a page of that name."""
    return bool(_LICENSE_NAME.match(name)) and not name.lower().endswith(_NOT_LICENSE_SUFFIXES)


def read_license_file(path: Path) -> str | None:
    """The detector's answer for one license file (its first MiB), or None when unreadable or silent."""
    try:
        with open(path, "rb") as f:
            text = f.read(LICENSE_FILE_BYTES).decode("utf-8", "replace")
    except OSError as exc:
        log.warning("cannot read %s: %s; it gives no license", path, exc)
        return None
    return detect_text(text)


def classifiers_license(classifiers: list[str]) -> str | None:
    """The AND of the SPDX ids of the license classifiers that name one license; None for none."""
    return combine([CLASSIFIER_SPDX[c] for c in classifiers if c in CLASSIFIER_SPDX])


def metadata_license(dist_info: Path) -> License | None:
    """A distribution's license from its `*.dist-info`: METADATA's License-Expression, else the
    license files in the dist-info folder, else the License classifiers, else a License field that
    is an SPDX expression; None when none of them names one."""
    source = f"package:{dist_info.name}"
    try:
        text = (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    meta = email.parser.Parser().parsestr(text, headersonly=True)
    declared = meta.get("License-Expression")
    if declared:
        try:
            return License(normalize(declared.strip()), source)
        except LicenseError as exc:
            log.warning("%s: License-Expression ignored: %s", dist_info, exc)
    files = sorted(p for p in dist_info.rglob("*") if is_license_file(p.name) and p.is_file())
    from_files = combine([e for e in map(read_license_file, files) if e])
    if from_files:
        return License(from_files, source)
    from_classifiers = classifiers_license(meta.get_all("Classifier") or [])
    if from_classifiers:
        return License(from_classifiers, source)
    field_value = (meta.get("License") or "").strip()
    if field_value and "\n" not in field_value:
        try:
            return License(normalize(field_value), source)
        except LicenseError:
            pass
    return None


def value_license(value: object) -> str:
    """A dataset column's license value (an SPDX expression, or a list of ids as The Stack's
    `detected_licenses`, joined with AND) as a normalised expression; `unknown` when it is empty or
    not SPDX (The Stack's `license_type` values, `no_license`, free text)."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        return UNKNOWN
    try:
        return combine([normalize(v.strip()) for v in items]) or UNKNOWN  # type: ignore[union-attr]
    except LicenseError:
        return UNKNOWN


@dataclass
class LicenseResolver:
    """The license of each file of a tree rooted at `root`, each folder listed and each license file
    detected once (a resolver per process: its caches are only ever added to)."""

    root: Path
    _listing: dict[str, list[str]] = field(default_factory=dict)
    _files: dict[str, License | None] = field(default_factory=dict)
    _owners: dict[str, dict[str, str]] = field(default_factory=dict)
    _packages: dict[str, License | None] = field(default_factory=dict)

    def of(self, path: str, data: bytes) -> License:
        """The license of the document at `path` (relative to the root, POSIX separators)."""
        header = header_license(data)
        if header:
            return License(header, "header")
        parts = path.split("/")
        for depth in range(len(parts) - 1, -1, -1):
            folder = "/".join(parts[:depth])
            owner = self.owners(folder).get("/".join(parts[depth:]))
            package = self.package(folder, owner) if owner else None
            if package is not None:
                return package
            found = self.folder_files(folder)
            if found is not None:
                return found
        return NONE

    def listing(self, folder: str) -> list[str]:
        if folder not in self._listing:
            try:
                self._listing[folder] = sorted(os.listdir(self.root / folder))
            except OSError:
                self._listing[folder] = []
        return self._listing[folder]

    def folder_files(self, folder: str) -> License | None:
        """The license of the folder's own license files (all of them, AND), or None."""
        if folder not in self._files:
            names = [n for n in self.listing(folder) if is_license_file(n) and self.inside(folder, n)]
            found = [(n, e) for n in names if (e := read_license_file(self.root / folder / n))]
            where = "/".join(filter(None, [folder, found[0][0]])) if found else ""
            expression = combine([e for _, e in found])
            self._files[folder] = License(expression, f"file:{where}") if expression else None
        return self._files[folder]

    def inside(self, folder: str, name: str) -> bool:
        """A regular file, or a symlink to one that stays inside the root (as the walk reads them)."""
        path = self.root / folder / name
        try:
            return path.is_file() and path.resolve().is_relative_to(self.root.resolve())
        except OSError:  # a symlink loop
            return False

    def owners(self, folder: str) -> dict[str, str]:
        """The files the folder's `*.dist-info/RECORD`s list (relative to the folder), each with the
        dist-info folder that lists it."""
        if folder not in self._owners:
            owned: dict[str, str] = {}
            for name in self.listing(folder):
                if name.endswith(".dist-info"):
                    owned.update(dict.fromkeys(record_paths(self.root / folder / name), name))
            self._owners[folder] = owned
        return self._owners[folder]

    def package(self, folder: str, dist_info: str) -> License | None:
        key = f"{folder}/{dist_info}"
        if key not in self._packages:
            self._packages[key] = metadata_license(self.root / folder / dist_info)
        return self._packages[key]


def record_paths(dist_info: Path) -> list[str]:
    """The paths a dist-info's RECORD lists inside the folder that holds it (not `../` ones)."""
    try:
        text = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows = csv.reader(io.StringIO(text))
    return [row[0] for row in rows if row and row[0] and not row[0].startswith(("../", "/"))]


class DocumentLicenses:
    """Each kept document's license in prepare's one deciding process: a dataset row's own column when
    it has one, else the resolver of the walked folder (`root`), else `unknown`."""

    def __init__(self, root: Path | None) -> None:
        self.resolver = LicenseResolver(root) if root is not None else None

    def of(self, path: str, text: str, column: tuple[str, str] | None) -> License:
        if column is not None:
            return License(column[0], f"column:{column[1]}")
        if self.resolver is None:
            return NONE
        return self.resolver.of(path, text[:HEADER_BYTES].encode("utf-8"))


@dataclass(frozen=True)
class LicenseFilter:
    """`data.license_filter`: keep every document (`all`), the permissive ones (`permissive`: The
    Stack's rule, unknown dropped), or those whose expression the listed ids satisfy alone."""

    allowed: frozenset[str] | None  # lower-case SPDX ids (and "unknown" to keep the undetected); None: all
    name: str

    def keeps(self, expression: str) -> bool:
        if self.allowed is None:
            return True
        if expression == UNKNOWN:
            return UNKNOWN in self.allowed
        return satisfied_by(expression, self.allowed)


def parse_filter(value: object, key: str = "data.license_filter") -> LicenseFilter:
    """The filter `value` names: `all`, `permissive`, or a list of SPDX license ids (and `unknown`).
    A value that is none of them is one `LicenseError` naming `key`, the entry and what was expected."""
    if value == "all":
        return LicenseFilter(None, "all")
    if value == "permissive":
        return LicenseFilter(PERMISSIVE, "permissive")
    expected = "'all', 'permissive' or a list of SPDX license ids"
    if not isinstance(value, list) or not value:
        raise LicenseError(f"{key}: expected {expected}, got {value!r}")
    allowed = []
    for i, item in enumerate(value):
        if item == UNKNOWN:
            allowed.append(UNKNOWN)
            continue
        try:
            ident = normalize(item) if isinstance(item, str) else None
        except LicenseError as exc:
            raise LicenseError(f"{key}[{i}]: expected an SPDX license id, got {item!r} ({exc})") from None
        if ident is None or " " in ident:
            raise LicenseError(f"{key}[{i}]: expected one SPDX license id, got {item!r}")
        allowed.append(ident.lower())
    return LicenseFilter(frozenset(allowed), "list")


def satisfied_by(expression: str, allowed: frozenset[str]) -> bool:
    """Whether the licenses in `allowed` alone satisfy `expression`: every part of an AND, one
    choice of an OR (`MIT OR GPL-3.0-only` is kept for MIT; `MIT AND GPL-3.0-only` is not)."""
    return _satisfied(_parsed(expression), allowed)


@lru_cache(maxsize=4096)
def _parsed(expression: str) -> object:
    return SPDX_LICENSE_LIST.parse(expression, strict=True)


def _satisfied(node: object, allowed: frozenset[str]) -> bool:
    if isinstance(node, LicenseWithExceptionSymbol):
        return node.license_symbol.key.lower() in allowed
    if isinstance(node, LicenseSymbol):
        return node.key.lower() in allowed
    args = getattr(node, "args", ())
    if isinstance(node, SPDX_LICENSE_LIST.AND):
        return all(_satisfied(a, allowed) for a in args)
    return any(_satisfied(a, allowed) for a in args)  # OR
