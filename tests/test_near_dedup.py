"""Near-duplicate removal (codex_ml/data/near_dedup.py) on real stdlib code and on pairs built to a
known Jaccard similarity; signatures byte for byte across processes; params messages."""

from __future__ import annotations

import json
import sys
import zlib

import numpy as np
import pytest

from codex_ml.data.near_dedup import NearDedupIndex, near_duplicates, shingles, signature, words
from codex_ml.data.sources import stdlib_root
from codex_ml.params import NearDedupParams, ParamsError, parse_params
from tests.conftest import ROOT, run

PARAMS = NearDedupParams()  # threshold 0.85, 5-word shingles, 128 permutations, seed 1


def stdlib(path: str) -> str:
    return (stdlib_root() / path).read_text(encoding="utf-8")


def jaccard(a: str, b: str, shingle_size: int = 5) -> float:
    """The exact Jaccard similarity of two documents' shingle sets."""
    sa, sb = set(shingles(a, shingle_size)), set(shingles(b, shingle_size))
    return len(sa & sb) / len(sa | sb)


def estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def lightly_edited(text: str) -> str:
    """What a vendored copy looks like: a header, one changed signature, one renamed helper, other
    blank lines."""
    edited = text.replace("def raw_decode(self, s, idx=0):",
                          "def raw_decode(self, s, idx=0, *, strict=None):")
    edited = edited.replace("py_scanstring", "scan_string_py").replace("\n\n", "\n\n\n")
    return "# Vendored from CPython 3.11 for the parser service; keep in sync.\n" + edited


def test_a_lightly_edited_copy_matches_the_original() -> None:
    original = stdlib("json/decoder.py")
    copy = lightly_edited(original)
    assert copy != original
    assert 0.85 <= jaccard(original, copy) < 1.0  # a near duplicate by construction, not an exact one
    index = NearDedupIndex(PARAMS)
    assert index.match("json/decoder.py", signature(original, PARAMS)) is None
    assert index.match("vendor/json_decoder.py", signature(copy, PARAMS)) == "json/decoder.py"
    assert (len(index), index.duplicates) == (1, 1)  # the copy was not inserted


def test_unrelated_code_does_not_match() -> None:
    docs = [(p, stdlib(p)) for p in ("json/decoder.py", "json/encoder.py", "email/utils.py", "textwrap.py")]
    assert near_duplicates(docs, PARAMS) == {}
    sigs = [signature(text, PARAMS) for _, text in docs]
    assert max(estimate(sigs[0], s) for s in sigs[1:]) < 0.2


def test_an_exact_copy_matches_and_reformatting_does_not_make_a_document_new() -> None:
    text = stdlib("textwrap.py")
    reformatted = text.replace("    ", "\t").replace(", ", " , ").replace("\n", "\n\n")
    assert signature(reformatted, PARAMS).tobytes() == signature(text, PARAMS).tobytes()
    found = near_duplicates([("textwrap.py", text), ("copy.py", text), ("tabs.py", reformatted)], PARAMS)
    assert found == {"copy.py": "textwrap.py", "tabs.py": "textwrap.py"}


def test_the_earliest_kept_candidate_is_returned() -> None:
    original = stdlib("json/decoder.py")
    first_copy = lightly_edited(original)
    second_copy = first_copy.replace("# Vendored", "# Copied")
    found = near_duplicates([("a.py", original), ("b.py", first_copy), ("c.py", second_copy)], PARAMS)
    assert found == {"b.py": "a.py", "c.py": "a.py"}  # c is closer to b, but b was not kept


def distinct_words(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


@pytest.mark.parametrize(("shingle_size", "shared", "own", "expected"), [
    (1, 570, 15, 570 / 600),  # 570 shared words, 15 of each document's own: J = 0.95
    (1, 420, 90, 420 / 600),  # J = 0.70
    (5, 604, 0, 1.0),  # the same 604 words
    # 604 shared words then 20 own: 600 shared shingles, 20 own each (shingles crossing the seam)
    (5, 604, 20, 600 / 640),
    (5, 404, 100, 400 / 600),
])
def test_threshold_is_respected_on_pairs_of_known_jaccard(shingle_size: int, shared: int, own: int,
                                                          expected: float) -> None:
    common = distinct_words(shared, "w")
    a = " ".join(common + distinct_words(own, "a"))
    b = " ".join(common + distinct_words(own, "b"))
    assert jaccard(a, b, shingle_size) == pytest.approx(expected)
    params = NearDedupParams(shingle_size=shingle_size, num_perm=256)
    sa, sb = signature(a, params), signature(b, params)
    est = estimate(sa, sb)
    assert abs(est - expected) < 4 * (expected * (1 - expected) / 256) ** 0.5 + 1e-9  # MinHash's error
    # 0.85 is 5 standard errors or more from every pair here: matched exactly when J >= 0.85
    index = NearDedupIndex(params)
    assert index.match("a", sa) is None
    assert (index.match("b", sb) == "a") is (expected >= 0.85)

@pytest.mark.parametrize("differing", [1, 10, 20, 40])
def test_the_threshold_applies_to_the_estimate_inclusively(differing: int) -> None:
    """A signature that differs from a kept one in its last `differing` values (its first LSH band
    is equal, so it is always a candidate) matches at threshold = its estimate, not one value above."""
    kept = signature(stdlib("json/decoder.py"), PARAMS)
    other = kept.copy()
    other[-differing:] ^= np.uint32(1)
    est = estimate(kept, other)
    assert est == (128 - differing) / 128
    for threshold, expected in ((est, "json/decoder.py"), (est + 1 / 128, None)):
        index = NearDedupIndex(PARAMS.model_copy(update={"threshold": threshold}))
        index.match("json/decoder.py", kept)
        assert index.match("other.py", other) == expected


@pytest.mark.parametrize("num_perm", [16, 128])
def test_threshold_one_matches_copies_only(num_perm: int) -> None:
    """At threshold 1 datasketch's band tuning wants one band, which its LSH refuses: two are used.
    (With 16 permutations a light edit can leave all 16 minima equal: the estimate is 1 then.)"""
    original = stdlib("json/decoder.py")
    edited = lightly_edited(original) if num_perm == 128 else stdlib("json/encoder.py")
    found = near_duplicates([("a.py", original), ("b.py", edited), ("c.py", original)],
                            NearDedupParams(threshold=1.0, num_perm=num_perm))
    assert found == {"c.py": "a.py"}


def test_short_and_wordless_documents() -> None:
    assert words("x=1;  y = x+1 # café") == [b"x", b"1", b"y", b"x", b"1", b"caf\xc3\xa9"]
    assert shingles("x = 1", 5) == [b"x 1"]  # fewer words than a shingle: one shingle of them all
    assert shingles("", 5) == shingles("#\n...\n", 5) == []
    found = near_duplicates([("a.py", "x = 1"), ("b.py", "x=1\n"), ("c.py", "y = 2"),
                             ("d.py", "...\n"), ("e.py", "# ---\n")], PARAMS)
    assert found == {"b.py": "a.py"}  # documents without a word are never matched, not even together
    index = NearDedupIndex(PARAMS)
    assert index.match("d.py", signature("...", PARAMS)) is None
    assert (len(index), index.unsigned) == (0, 1)


def test_match_refuses_a_foreign_signature_and_a_key_twice() -> None:
    index = NearDedupIndex(PARAMS)
    sig = signature("def f(x): return x", PARAMS)
    assert sig.dtype == np.uint32 and sig.shape == (128,)
    index.match("f.py", sig)
    with pytest.raises(ValueError, match="already kept"):
        index.match("f.py", sig)
    with pytest.raises(ValueError, match=r"128 uint32 values \(data.near_dedup.num_perm\), got \(64,\)"):
        index.match("g.py", signature("def g(x): return x", NearDedupParams(num_perm=64)))


SIGNATURE_FILES = ("json/decoder.py", "textwrap.py", "encodings/cp1140.py")


def test_signatures_are_identical_across_processes() -> None:
    """Workers compute signatures, one process compares them: another interpreter (another hash seed)
    must give the same bytes. That interpreter also shows that neither importing near_dedup nor
    computing signatures imports datasketch (and scipy with it, ~0.5 CPU s): not in a prepare run with
    near-dedup off, and not in each of prepare's workers."""
    script = ("import json, sys; from codex_ml.data.near_dedup import signature; "
              "from codex_ml.data.sources import stdlib_root; from codex_ml.params import NearDedupParams; "
              "p = NearDedupParams(seed=7); "
              "sigs = [signature((stdlib_root() / f).read_text(encoding='utf-8'), p).tobytes().hex() "
              "for f in sys.argv[1:]]; "
              "print(json.dumps(['datasketch' in sys.modules, sigs]))")
    proc = run([sys.executable, "-c", script, *SIGNATURE_FILES], cwd=ROOT, PYTHONHASHSEED="12345",
               PYTHONPATH=str(ROOT))
    imported, theirs = json.loads(proc.stdout)
    assert imported is False
    params = NearDedupParams(seed=7)
    ours = [signature(stdlib(f), params).tobytes().hex() for f in SIGNATURE_FILES]
    assert theirs == ours
    assert ours[0] != signature(stdlib(SIGNATURE_FILES[0]), PARAMS).tobytes().hex()  # the seed matters


@pytest.mark.parametrize("num_perm", [16, 128, 256])
def test_signatures_are_datasketchs_minhash(num_perm: int) -> None:
    """signature_of computes datasketch's affine32 MinHash itself: the same values as datasketch's
    MinHash over the same shingles, for texts short and long (more shingles than one batch), a
    text of repeats and one with no word."""
    from datasketch import MinHash

    from codex_ml.data import near_dedup

    params = NearDedupParams(num_perm=num_perm, seed=3)
    big = stdlib("textwrap.py") + stdlib("json/decoder.py") * 3
    texts = [stdlib(f) for f in SIGNATURE_FILES] + ["x = 1", "a b " * 50, "", big]
    assert len(set(shingles(big, params.shingle_size))) > near_dedup._BATCH
    for seed in (0, 1, 3, 2**31):
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme=near_dedup.SCHEME).permutations
        assert all(np.array_equal(x, y) for x, y in zip((a, b), near_dedup._permutations(num_perm, seed),
                                                        strict=True))
    for text in texts:
        m = MinHash(num_perm=num_perm, seed=3, hashfunc=zlib.crc32, scheme=near_dedup.SCHEME)
        values = shingles(text, params.shingle_size)
        if values:
            m.update_batch(values)
        assert np.array_equal(signature(text, params), m.hashvalues), text[:40]
        assert signature(text, params).dtype == m.hashvalues.dtype == np.uint32


@pytest.mark.parametrize(("near_dedup", "message"), [
    ({"threshold": 0.0}, "data.near_dedup.threshold: expected a number in (0, 1], got 0.0"),
    ({"threshold": 1.5}, "data.near_dedup.threshold: expected a number in (0, 1], got 1.5"),
    ({"threshold": "0.8"}, "data.near_dedup.threshold: expected a number, got '0.8'"),
    ({"num_perm": 8}, "data.near_dedup.num_perm: expected an integer in [16, 1024], got 8"),
    ({"num_perm": 2048}, "data.near_dedup.num_perm: expected an integer in [16, 1024], got 2048"),
    ({"shingle_size": 0}, "data.near_dedup.shingle_size: expected an integer >= 1, got 0"),
    ({"seed": -1}, "data.near_dedup.seed: expected an integer in [0, 4294967296), got -1"),
    ({"enabled": "yes"}, "data.near_dedup.enabled: expected true or false, got 'yes'"),
    ({"thresh": 0.9}, "data.near_dedup.thresh: unknown key; expected one of enabled, num_perm, seed, "
                      "shingle_size, threshold"),
])
def test_bad_near_dedup_params_name_the_key(near_dedup: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params({"data": {"near_dedup": near_dedup}}, "params.yaml")
    assert str(err.value) == f"params.yaml: {message}"
