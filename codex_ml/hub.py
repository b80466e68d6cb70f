"""The local Hugging Face cache, read offline: one resolver for models (`model.pretrained`) and datasets
(`data.path`, `codex eval --data`).

A hub id resolves to a snapshot already in the cache through huggingface_hub's own offline lookup
(`snapshot_download(local_files_only=True)`); nothing is downloaded at run time, so a run is
reproducible offline and never changes because the hub did. A model id is `owner/name`; a dataset id may
name a folder inside the snapshot (`owner/name/data/python`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

RepoType = Literal["model", "dataset"]


class NotCached(LookupError):
    """A hub id that is not (wholly) in the local cache. The message says how to fetch it once."""


def looks_like_hub_id(name: str, repo_type: RepoType = "model") -> bool:
    """`owner/name` (a dataset id may go on into a folder of its snapshot), not a relative path."""
    parts = name.split("/")
    count_ok = len(parts) == 2 if repo_type == "model" else len(parts) >= 2
    return count_ok and all(parts) and not name.startswith((".", "~"))


def cache_dir() -> str | None:
    """The cache as the environment names it now (huggingface_hub reads it once, at import)."""
    home = os.environ.get("HF_HOME")
    return os.environ.get("HF_HUB_CACHE") or (os.path.join(home, "hub") if home else None)


def cached_snapshot(name: str, revision: str | None, repo_type: RepoType = "model") -> tuple[Path, str]:
    """The local folder of hub id `name` (a folder inside its snapshot for a dataset id that names one)
    and the commit of the snapshot; NotCached when it is not in the cache."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError
    from huggingface_hub.utils import HFValidationError

    owner, repo, *sub = name.split("/")
    repo_id, cache = f"{owner}/{repo}", cache_dir()
    fetch = (f"`hf download {repo_id}{' --repo-type dataset' if repo_type == 'dataset' else ''}"
             f"{f' --revision {revision}' if revision else ''}`")
    try:
        snapshot = Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, cache_dir=cache,
                                          local_files_only=True))
    except IncompleteSnapshotError as exc:
        raise NotCached(f"is only partly in the local Hugging Face cache ({exc.snapshot_path}); nothing is "
                        f"downloaded at run time: complete it once with {fetch}") from None
    except (LocalEntryNotFoundError, HFValidationError, OSError):
        raise NotCached(f"is not in the local Hugging Face cache ({cache or constants.HF_HUB_CACHE}) and "
                        f"nothing is downloaded at run time: fetch it once with {fetch} (HF_HOME selects "
                        "the cache)") from None
    folder = snapshot.joinpath(*sub)
    if not folder.is_dir():
        raise NotCached(f"is not there: the cached snapshot of {repo_id} (commit {snapshot.name}) has no "
                        f"folder {'/'.join(sub)}")
    return folder, snapshot.name
