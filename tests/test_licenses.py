"""License detection per document (codex_ml/data/licenses.py) on a planted corpus: folders under MIT,
Apache-2.0, BSD-3-Clause, GPL-3.0 and none, files whose SPDX header overrides their folder, installed
packages with their dist-info; the filter and its errors; the same answers for any number of workers;
and the default corpus, where every document gets the standard library's own license."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from codex_ml.data.documents import RawDocument
from codex_ml.data.licenses import (
    UNKNOWN,
    License,
    LicenseError,
    LicenseResolver,
    header_license,
    metadata_license,
    parse_filter,
    value_license,
)
from codex_ml.data.sources import EXCLUDED_STDLIB_DIRS, stdlib_root, walk_files
from tests.licensekit import PLANTED, TEXTS, plant


def resolve(root: Path, docs: list[RawDocument]) -> list[tuple[str, License]]:
    resolver = LicenseResolver(root)
    return [(d.path, resolver.of(d.path, d.data)) for d in docs if d.data is not None]


def walked(root: Path, rank: int = 0, world_size: int = 1) -> list[RawDocument]:
    return list(walk_files(root, ["*.py", "*.c", "*.html"], 1 << 20, rank=rank, world_size=world_size))


def test_planted_corpus_gets_the_planted_licenses(tmp_path: Path) -> None:
    root = plant(tmp_path)
    found = dict(resolve(root, walked(root)))
    assert found == {rel: License(expr, source) for rel, (_, expr, source) in PLANTED.items()}


def test_permissive_keeps_exactly_the_permissive_documents(tmp_path: Path) -> None:
    root = plant(tmp_path)
    found = resolve(root, walked(root))
    keep = parse_filter("permissive")
    kept = {path for path, lic in found if keep.keeps(lic.expression)}
    dropped = Counter(lic.expression for path, lic in found if path not in kept)
    assert kept == {"mit/a.py", "mit/deep/er/b.py", "mit/vendored/c.py", "apache/d.py", "apache/e.py",
                    "bsd/f.py", "bsd/g.c", "gpl/j.py", "none/m.html", "site/pkg/__init__.py",
                    "site/pkg/sub/mod.py", "site/old/__init__.py"}
    assert dropped == {"GPL-3.0-only": 2, "GPL-2.0-or-later": 1, UNKNOWN: 2}
    assert all(parse_filter("all").keeps(lic.expression) for _, lic in found)


def test_a_list_of_ids_keeps_exactly_those(tmp_path: Path) -> None:
    root = plant(tmp_path)
    found = resolve(root, walked(root))
    only_mit = {path for path, lic in found if parse_filter(["mit"]).keeps(lic.expression)}
    # "Apache-2.0 OR MIT" is satisfied by MIT alone; "Apache-2.0 AND ..." would not be
    assert only_mit == {"mit/a.py", "mit/deep/er/b.py", "apache/e.py", "bsd/g.c", "site/old/__init__.py"}
    gpl_or_unknown = parse_filter(["GPL-3.0-only", "unknown"])
    assert {path for path, lic in found if gpl_or_unknown.keeps(lic.expression)} == {
        "gpl/h.py", "site/loose.py", "none/k.py", "none/l.py"}
    assert not parse_filter(["MIT"]).keeps("MIT AND Apache-2.0")
    assert parse_filter(["MIT", "Apache-2.0"]).keeps("MIT AND Apache-2.0")
    assert parse_filter(["GPL-2.0-only"]).keeps("GPL-2.0-only WITH Classpath-exception-2.0")


@pytest.mark.parametrize(("value", "message"), [
    (["MIT", "Foo-1.0"], "data.license_filter[1]: expected an SPDX license id, got 'Foo-1.0'"),
    (["MIT AND"], "data.license_filter[0]: expected an SPDX license id, got 'MIT AND'"),
    (["MIT OR Apache-2.0"], "data.license_filter[0]: expected one SPDX license id, got 'MIT OR Apache-2.0'"),
    ("permisive", "data.license_filter: expected 'all', 'permissive' or a list of SPDX license ids, "
                  "got 'permisive'"),
    ([], "data.license_filter: expected 'all', 'permissive' or a list of SPDX license ids, got []"),
    ([3], "data.license_filter[0]: expected one SPDX license id, got 3"),
])
def test_a_malformed_filter_is_one_error_naming_key_and_value(value: object, message: str) -> None:
    with pytest.raises(LicenseError) as err:
        parse_filter(value)
    assert str(err.value).startswith(message)


def _part(args: tuple[str, int, int]) -> list[tuple[str, License]]:
    root, rank, world_size = args
    return resolve(Path(root), walked(Path(root), rank, world_size))


def test_the_same_answers_for_any_number_of_workers(tmp_path: Path) -> None:
    """Each worker process walks its own part with a resolver of its own (cold caches): together the
    same licenses, in the same order, as one process."""
    root = plant(tmp_path)
    one = resolve(root, walked(root))
    with ProcessPoolExecutor(2) as pool:
        for world_size in (2, 3):
            parts = pool.map(_part, [(str(root), r, world_size) for r in range(world_size)])
            assert [x for part in parts for x in part] == one


def test_a_license_file_outside_the_corpus_is_not_read(tmp_path: Path) -> None:
    """A LICENSE symlinked out of the corpus is not the corpus's: ignored, as the walk ignores such links;
    one that points inside it is read."""
    outside = tmp_path / "outside.txt"
    outside.write_text((TEXTS / "MIT").read_text(encoding="utf-8"), encoding="utf-8")
    root = tmp_path / "corpus"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "LICENSE").symlink_to(outside)
    (root / "b" / "LICENSE").symlink_to(root / "b" / "real.txt")
    bsd = (TEXTS / "BSD-3-Clause").read_text(encoding="utf-8")
    (root / "b" / "real.txt").write_text(bsd, encoding="utf-8")
    resolver = LicenseResolver(root)
    assert resolver.of("a/x.py", b"x = 1\n") == License(UNKNOWN, "none")
    assert resolver.of("b/y.py", b"y = 2\n") == License("BSD-3-Clause", "file:b/LICENSE")


def test_header_forms() -> None:
    assert header_license(b"// SPDX-License-Identifier: mit\n") == "MIT"
    assert header_license(b"# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception\n") == (
        "Apache-2.0 WITH LLVM-exception")
    assert header_license(b"-- SPDX-License-Identifier: LicenseRef-Corp-1\n") == "LicenseRef-Corp-1"
    two = b"# SPDX-License-Identifier: MIT\n# SPDX-License-Identifier: ISC\n"
    assert header_license(two) == "MIT AND ISC"
    assert header_license(b"x = 1\n" * 1000 + b"# SPDX-License-Identifier: MIT\n") is None  # past 4 KiB
    assert header_license(b'"""SPDX-License-Identifier: MIT"""\n') == "MIT"


def test_dataset_columns() -> None:
    """A dataset's own license column (data.source hf): an SPDX id, The Stack's list of detected ids,
    or a value that is no license id (`no_license`, free text), which is unknown."""
    assert value_license("mit") == "MIT"
    assert value_license(["MIT", "Apache-2.0", "MIT"]) == "MIT AND Apache-2.0"
    assert value_license("GPL-3.0+") == "GPL-3.0-or-later"
    for value in ("no_license", "", None, [], ["MIT", None], "see LICENSE"):
        assert value_license(value) == UNKNOWN


def test_an_installed_package_of_this_venv() -> None:
    """The METADATA of a package the project installs: license-expression declares Apache-2.0."""
    from importlib import metadata

    dist = metadata.distribution("license-expression")
    dist_info = Path(str(dist.locate_file(""))) / f"license_expression-{dist.version}.dist-info"
    assert metadata_license(dist_info) == License("Apache-2.0", f"package:{dist_info.name}")


def test_the_default_corpus_has_the_standard_librarys_license() -> None:
    """Every document of the stdlib gets a license: CPython's own LICENSE.txt at its root (the PSF
    license stack, SPDX Python-2.0.1, with 0BSD for the code in its documentation), and the MIT of the
    files that carry an SPDX header (tomllib)."""
    root = stdlib_root()
    resolver = LicenseResolver(root)
    counts: Counter[License] = Counter()
    for doc in walk_files(root, ["**/*.py"], 1 << 20, frozenset(EXCLUDED_STDLIB_DIRS)):
        if doc.data is not None:
            counts[resolver.of(doc.path, doc.data)] += 1
    by_expression = Counter({lic.expression: n for lic, n in counts.items()})
    assert UNKNOWN not in by_expression
    assert counts.most_common(1)[0][0] == License("Python-2.0.1 AND 0BSD", "file:LICENSE.txt")
    assert counts[License("MIT", "header")] >= 4  # tomllib's four modules at least
    assert all(parse_filter("permissive").keeps(e) for e in by_expression)


def test_a_datasets_own_license_column_through_prepare(tmp_path: Path) -> None:
    """A Hub dataset's `detected_licenses` (a list, The Stack's column) and a JSONL record's `license`
    are the documents' licenses, and the permissive filter reads them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from codex_ml.data.stage import prepare
    from codex_ml.params import DataParams
    from codex_ml.shards import iter_prepared

    given = [["MIT"], ["Apache-2.0", "MIT"], [], ["GPL-3.0-only"], ["no_license"]] * 4
    expected = ["MIT", "Apache-2.0 AND MIT", UNKNOWN, "GPL-3.0-only", UNKNOWN] * 4
    rows = [{"path": f"r{i}.py", "content": f"value_{i} = {i}\n", "detected_licenses": v}
            for i, v in enumerate(given)]
    shards = tmp_path / "hf"
    shards.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), shards / "train-00000.parquet")
    jsonl = tmp_path / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps({"path": r["path"], "content": r["content"],
                                         "license": " AND ".join(r["detected_licenses"])}) + "\n"
                             for r in rows), encoding="utf-8")
    for source, path, column in (("hf", shards, "detected_licenses"), ("jsonl", jsonl, "license")):
        out = tmp_path / source
        params = DataParams(source=source, path=str(path), text_field="content", decontaminate=[],
                            val_fraction=0.01, test_fraction=0.01, license_filter="permissive")
        m = prepare(params, out / "prepared", out / "prepare.json")
        kept = {r["path"]: (r["license"], r["license_source"]) for s in ("train", "val", "test")
                for _, r in iter_prepared(out / "prepared", s)}
        assert kept == {f"r{i}.py": (e, f"column:{column}") for i, e in enumerate(expected)
                        if e in ("MIT", "Apache-2.0 AND MIT")}, source
        assert m["license_dropped"] == {"GPL-3.0-only": 4, UNKNOWN: 8}, source
