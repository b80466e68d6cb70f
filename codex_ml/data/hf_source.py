"""Hugging Face datasets as a source (`data.source: hf`), read through the `datasets` library in bounded
memory: a batch of rows at a time, never the whole dataset in RAM.

`data.path` is one of:

1. A `save_to_disk` folder (`dataset_dict.json`, or `state.json` beside `dataset_info.json`): opened
   with `datasets.load_from_disk`, memory-mapped Arrow; `data.split` picks the split of a DatasetDict.
2. A folder of shards: parquet, json / jsonl / ndjson (plain, `.gz` or `.zst`) or arrow files. The files
   of `data.split` are found by datasets' own conventions, the Hub's (`data/train-00000-of-00004.parquet`,
   `train/...`, `test.jsonl`; a folder whose file names name no split is all `train`), sorted by their
   path in the folder, and each is streamed by `load_dataset(<builder>, data_files=[file],
   streaming=True)`. One format per split: a folder that mixes parquet and json is an error, not a
   majority vote. Other files (README.md, LICENSE, .csv) are not read.
3. A hub dataset id, `owner/name`, or `owner/name/sub/folder` for a folder inside the repository (as
   multi-config datasets lay out theirs), at `data.revision`: the snapshot already in the local Hugging
   Face cache (`snapshot_download(..., local_files_only=True)`), then read as 1 or 2. Nothing is
   downloaded at run time, as for `model.pretrained` (base_model.py): a run is reproducible offline and
   never changes because the hub did. Metrics record the commit the revision resolved to.

Each row is a document: its text in `data.text_field` (a column that is not there is one error naming
the columns that are); its identity in `data.id_field`, or by default the `path` column, else the `id`
column, else the row's place: `<file>:<row>` for shards (the file's path in the folder, rows counted
from 0 in each file), so that a new shard never moves another's documents between splits (the split
hashes the identity), and `<split>:<row>` for a save_to_disk dataset. A null or non-string text is
rejected as `malformed_row`, text over `data.max_file_bytes` as `too_large`. `data.include` does not
apply to rows (sources.py says why).

Each shard is its own `load_dataset` call (about 10 ms) rather than one call over all of them: a row's
default identity and a rank's part both need to know where each file ends. Parts (`HfSource.documents`'
rank of world_size): contiguous runs of shard files balanced by bytes (so one big file is one part), or
contiguous row ranges of a save_to_disk dataset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codex_ml.data.documents import RawDocument, Source, check_part, document_id, part_bounds
from codex_ml.data.licenses import LICENSE_COLUMNS, value_license
from codex_ml.hub import NotCached, cached_snapshot, looks_like_hub_id
from codex_ml.params import DataParams
from codex_ml.runtime import StageError

log = logging.getLogger(__name__)

# Shard file endings and the datasets builder that reads each; json may also be .gz or .zst.
SHARD_BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json",
                  ".ndjson": "json"}
JSON_COMPRESSIONS = (".gz", ".zst")
BATCH_ROWS = 256  # rows held at once (each at most data.max_file_bytes of text that is kept)
LISTED_SHARDS = 32  # metrics name the shards up to this many; past it, their count and hash only
TEXT_DTYPES = ("string", "large_string")


@dataclass(frozen=True)
class HfDataset:
    """A resolved `data.path`: its local folder, how it is read, and the files of `data.split`."""

    name: str  # data.path as given
    folder: Path
    builder: str  # parquet, json, arrow, or save_to_disk
    files: tuple[Path, ...]  # the split's files, sorted by their path in the folder
    commit: str | None = None  # the snapshot's commit, for a hub id
    dataset: Any = field(default=None, compare=False, repr=False)  # save_to_disk: the split, memory-mapped

    def rel(self, file: Path) -> str:
        return Path(os.path.relpath(file, self.folder)).as_posix()


def offline_datasets() -> None:
    """Keep the `datasets` library offline: without this, every `load_dataset` of a local file still
    sends a HEAD request to the Hub's download counter (datasets' `increase_load_count`). Set on the
    module as well as in the environment, since datasets reads the environment once, at import."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets

    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False


def shard_builder(name: str) -> str | None:
    """The datasets builder that reads a file of this name, or None when it is not a shard."""
    lower = name.lower()
    for compression in ("", *JSON_COMPRESSIONS):
        for ext, builder in SHARD_BUILDERS.items():
            if lower.endswith(ext + compression) and (not compression or builder == "json"):
                return builder
    return None


def is_dataset_folder(folder: Path) -> bool:
    """Whether a folder is a dataset rather than a tree of code: a save_to_disk folder, or one whose
    files (here and one level down, as `data/` layouts are) include shards and no .py file."""
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        return True
    names = [p.name for p in [*folder.glob("*"), *folder.glob("*/*")] if p.is_file()]
    return any(shard_builder(n) for n in names) and not any(n.endswith(".py") for n in names)


def resolve_hf(params: DataParams) -> HfDataset:
    """`data.path` as a local folder (a hub id through the local cache) and the files of `data.split`;
    every problem is one StageError naming the key to fix."""
    name = str(params.path)
    path = Path(name).expanduser()
    commit = None
    if path.is_dir():
        if params.revision is not None:
            raise StageError(f"data.revision: applies to a hub dataset id only; data.path {name} is a local "
                             f"folder (set data.revision: null)")
        folder = path.absolute()
    elif path.exists():
        raise StageError(f"data.path: {name} is a file; data.source 'hf' reads a folder of parquet / json / "
                         f"arrow shards, a save_to_disk folder or a hub dataset id (for one JSONL file: "
                         f"data.source jsonl)")
    elif looks_like_hub_id(name, "dataset"):
        try:
            folder, commit = cached_snapshot(name, params.revision, "dataset")
        except NotCached as exc:
            at = f" (data.revision {params.revision})" if params.revision else ""
            raise StageError(f"data.path: {name}{at} {exc}, or set data.path to a folder") from None
    else:
        raise StageError(f"data.path: {name} is neither a folder nor a hub dataset id (owner/name)")
    if (folder / "dataset_dict.json").is_file() or ((folder / "state.json").is_file()
                                                    and (folder / "dataset_info.json").is_file()):
        return saved_dataset(name, folder, params.split, commit)
    return shard_folder(name, folder, params.split, commit)


def saved_dataset(name: str, folder: Path, split: str, commit: str | None) -> HfDataset:
    offline_datasets()
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder), keep_in_memory=False)
    except (OSError, ValueError) as exc:
        raise StageError(f"data.path: {name} is a save_to_disk folder that datasets cannot load: "
                         f"{str(exc).splitlines()[0]}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise StageError(f"data.split: {split!r} is not a split of {name} (its splits: "
                             f"{', '.join(loaded)})")
        dataset = loaded[split]
    else:
        dataset = loaded
        if dataset.split is not None and str(dataset.split) != split:
            raise StageError(f"data.split: {split!r}, but {name} holds one dataset, of split "
                             f"{str(dataset.split)!r} (set data.split: {dataset.split})")
    files = tuple(Path(f["filename"]) for f in dataset.cache_files)
    return HfDataset(name, folder, "save_to_disk", files, commit, dataset)


def shard_folder(name: str, folder: Path, split: str, commit: str | None) -> HfDataset:
    offline_datasets()
    from datasets.data_files import get_data_patterns, resolve_pattern

    try:
        patterns = {str(s): p for s, p in get_data_patterns(str(folder)).items()}
    except FileNotFoundError:  # datasets' EmptyDatasetError: no file at all
        raise StageError(f"data.path: {name} has no files (expected parquet, json(l)(.gz/.zst) or arrow "
                         f"shards, or a save_to_disk folder)") from None
    if split not in patterns:
        raise StageError(f"data.split: {split!r} is not a split of {name} (its splits, by the file names: "
                         f"{', '.join(patterns)})")
    found: set[str] = set()
    for pattern in patterns[split]:
        try:
            found.update(resolve_pattern(pattern, str(folder)))
        except FileNotFoundError:
            continue
    by_builder: dict[str, list[Path]] = {}
    others: list[str] = []
    for file in sorted(Path(f) for f in found):
        builder = shard_builder(file.name)
        if builder is None:
            others.append(file.name)
        else:
            by_builder.setdefault(builder, []).append(file)
    if not by_builder:
        what = f"only {len(others)} other files ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})"
        raise StageError(f"data.path: {name} has no parquet, json(l)(.gz/.zst) or arrow shards for split "
                         f"{split!r}: {what}")
    if len(by_builder) > 1:
        mix = ", ".join(f"{len(files)} {builder}" for builder, files in sorted(by_builder.items()))
        raise StageError(f"data.path: {name} mixes shard formats in split {split!r} ({mix}); keep one format "
                         f"per folder")
    if others:
        log.info("%s: %d files that are not shards are not read (%s)", name, len(others),
                 ", ".join(others[:3]))
    [(builder, files)] = by_builder.items()
    return HfDataset(name, folder, builder, tuple(files), commit)  # sorted as a walk is: folder by folder


@dataclass(frozen=True)
class HfSource(Source):
    """`data.source: hf`, resolved once (`open`): its folder found, its split's files listed, a
    save_to_disk dataset opened."""

    dataset: HfDataset
    params: DataParams

    @classmethod
    def open(cls, params: DataParams) -> HfSource:
        return cls(resolve_hf(params), params)

    def describe(self) -> dict[str, Any]:
        return describe_hf(self.dataset, self.params)

    def documents(self, rank: int = 0, world_size: int = 1) -> Iterator[RawDocument]:
        check_part(rank, world_size)
        return read_hf(self.dataset, self.params, rank, world_size)


def describe_hf(ds: HfDataset, params: DataParams) -> dict[str, Any]:
    """What metrics record of an hf source: where, which revision and commit, the split, its shards."""
    names = [ds.rel(f) for f in ds.files]
    digest = hashlib.sha256()
    for rel, file in zip(names, ds.files, strict=True):
        digest.update(f"{rel}\0{file.stat().st_size}\n".encode())
    out: dict[str, Any] = {"kind": "hf", "path": str(params.path), "format": ds.builder,
                           "split": params.split,
                           "revision": (params.revision or "main") if ds.commit else None,
                           "commit": ds.commit, "shards": len(names), "shards_sha256": digest.hexdigest()}
    if len(names) <= LISTED_SHARDS:
        out["files"] = names
    if ds.dataset is not None:
        out["rows"] = len(ds.dataset)
    return out


def read_hf(ds: HfDataset, params: DataParams, rank: int = 0, world_size: int = 1) -> Iterator[RawDocument]:
    """The documents of contiguous part `rank` of `world_size` of an hf source, in source order."""
    if ds.dataset is not None:
        yield from read_saved(ds, params, rank, world_size)
        return
    start, stop = part_bounds([f.stat().st_size for f in ds.files], rank, world_size)
    # datasets keeps lock files in its cache even when streaming: a throwaway one, not ~/.cache.
    with tempfile.TemporaryDirectory(prefix="codex-hf-") as cache_dir:
        for file in ds.files[start:stop]:
            yield from read_shard(ds, file, params, cache_dir)


def columns_of(names: list[str], features: Any, params: DataParams, where: str) -> list[str]:
    """The columns read: text, then the identity and the license column (licenses.LICENSE_COLUMNS)
    when there are ones; checked against the ones that exist."""
    import datasets

    if params.text_field not in names:
        raise StageError(f"data.text_field: no column {params.text_field!r} in {where}; its columns: "
                         f"{', '.join(names) or 'none'}")
    feature = features.get(params.text_field) if features is not None else None
    if isinstance(feature, datasets.Value) and feature.dtype not in TEXT_DTYPES:
        raise StageError(f"data.text_field: column {params.text_field!r} of {where} holds {feature.dtype}, "
                         f"not text")
    if params.id_field is not None:
        if params.id_field not in names:
            raise StageError(f"data.id_field: no column {params.id_field!r} in {where}; its columns: "
                             f"{', '.join(names)}")
        read = [params.text_field, params.id_field]
    else:
        id_column = next((c for c in ("path", "id") if c in names), None)
        read = [params.text_field] + ([id_column] if id_column else [])
    license_column = next((c for c in LICENSE_COLUMNS if c in names and c not in read), None)
    return read + ([license_column] if license_column else [])


def read_shard(ds: HfDataset, file: Path, params: DataParams, cache_dir: str) -> Iterator[RawDocument]:
    offline_datasets()
    import datasets

    rel = ds.rel(file)
    where = f"{ds.name} shard {rel}"

    def stream(**config: Any) -> datasets.IterableDataset:
        return datasets.load_dataset(ds.builder, data_files=[str(file)], split="train", streaming=True,
                                     cache_dir=cache_dir, **config)

    try:
        rows = stream()
        columns = None
        if rows.features is not None:  # known from the schema up front (json arrays: from the first rows)
            columns = columns_of(list(rows.features), rows.features, params, where)
            # parquet reads only the columns asked for; the others are dropped after reading
            rows = stream(columns=columns) if ds.builder == "parquet" else rows.select_columns(columns)
            rows = as_arrow(rows, columns)
        malformed = Malformed(where)
        row = 0
        for batch in rows.iter(batch_size=BATCH_ROWS):
            if columns is None:
                columns = columns_of(list(batch), None, params, where)
            for doc in batch_documents(batch, columns, rel, row, params.max_file_bytes):
                malformed.see(doc, row)
                row += 1
                yield doc
        malformed.report()
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as exc:
        raise StageError(f"data.path: cannot read {where}: {str(exc).splitlines()[0]}") from None


def read_saved(ds: HfDataset, params: DataParams, rank: int, world_size: int) -> Iterator[RawDocument]:
    dataset = ds.dataset
    n = len(dataset)
    start, stop = n * rank // world_size, n * (rank + 1) // world_size
    columns = columns_of(list(dataset.column_names), dataset.features, params, ds.name)
    part = as_arrow(dataset.select_columns(columns).select(range(start, stop)), columns)
    malformed = Malformed(ds.name)
    row = start
    for batch in part.iter(batch_size=BATCH_ROWS):
        for doc in batch_documents(batch, columns, params.split, row, params.max_file_bytes):
            malformed.see(doc, row)
            row += 1
            yield doc
    malformed.report()


def as_arrow(rows: Any, columns: list[str]) -> Any:
    """Rows batched as Arrow tables, not as Python dicts built row by row, when every column is a plain
    value; a `Json` column (json shards whose types vary by row) decodes only in Python."""
    import datasets

    plain = rows.features is not None and all(isinstance(rows.features[c], datasets.Value) for c in columns)
    return rows.with_format("arrow") if plain else rows


def batch_documents(batch: Any, columns: list[str], place: str, first_row: int,
                    max_file_bytes: int) -> Iterator[RawDocument]:
    """The documents of one batch of rows (an Arrow table, or a dict column -> values), one per row, in
    order; a row without an identity is `<place>:<row>`, rows counted from `first_row`."""
    if not isinstance(batch, dict):
        batch = {c: batch.column(c).to_pylist() for c in columns}
    texts = batch[columns[0]]
    license_column = columns[-1] if len(columns) > 1 and columns[-1] in LICENSE_COLUMNS else None
    identity = columns[1:-1] if license_column else columns[1:]
    ids = batch[identity[0]] if identity else None
    licenses = batch[license_column] if license_column else None
    for i, text in enumerate(texts):
        default = f"{place}:{first_row + i}"
        doc_id = document_id(ids[i], default) if ids is not None else default
        if not isinstance(text, str):
            yield RawDocument(doc_id, None, "malformed_row")
        elif len(text) > max_file_bytes:  # characters <= UTF-8 bytes: too large without encoding it
            yield RawDocument(doc_id, None, "too_large")
        else:
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates
                yield RawDocument(doc_id, None, "invalid_utf8")
                continue
            found = (value_license(licenses[i]), str(license_column)) if licenses is not None else None
            too_large = len(data) > max_file_bytes
            yield (RawDocument(doc_id, None, "too_large") if too_large
                   else RawDocument(doc_id, data, license=found))


class Malformed:
    """Counts one shard's (or dataset's) malformed rows, to warn once about them rather than per row."""

    def __init__(self, where: str) -> None:
        self.where, self.count, self.first = where, 0, -1

    def see(self, doc: RawDocument, row: int) -> None:
        if doc.rejected == "malformed_row":
            self.count += 1
            if self.first < 0:
                self.first = row

    def report(self) -> None:
        if self.count:
            log.warning("%s: %d rows without a string text (null or another type), rejected as malformed_row "
                        "(the first: row %d)", self.where, self.count, self.first)
