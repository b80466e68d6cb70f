"""The FIM transform and its sentinels on real tokenizers and real stdlib code: the trained backends'
sentinels at ids 4-6 (found by AutoTokenizer, their text still text), the resolver on pretrained
spellings, exact text from packed ids, the round trip prefix + middle + suffix = the document, and
windows that are the same for any order or worker."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from codex_ml.fim.sentinels import (
    SPELLINGS,
    TRAINED,
    TRAINED_IDS,
    FimError,
    find_sentinels,
    require_sentinels,
)
from codex_ml.fim.token_bytes import TokenBytes, check_round_trip
from codex_ml.fim.transform import arrange, cut, draw, example_rng
from codex_ml.fim.windows import IGNORE, MARGIN, FimConfig, FimWindows
from codex_ml.tokenization import CodexTokenizer, load_tokenizer, train_tokenizer
from codex_ml.tokenization.codex_tokenizer import FIM_TOKENS
from tests.pretrainedkit import train_family_tokenizer
from tests.tokenizekit import sample_documents, small_params

BACKENDS = [("hf-bpe", "bpe"), ("sentencepiece", "bpe")]
Trained = dict[str, tuple[CodexTokenizer, Path]]


@pytest.fixture(scope="module")
def texts(stdlib_sample: Path) -> list[str]:
    return [text for _, text in sample_documents(stdlib_sample)]


@pytest.fixture(scope="module")
def trained(texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Trained:
    out = {}
    for backend, model_type in BACKENDS:
        tok = train_tokenizer(texts[:12], small_params(backend, model_type))
        folder = tmp_path_factory.mktemp(f"fim-{backend}")
        tok.save(folder)
        out[backend] = (load_tokenizer(folder), folder)
    return out


def fim_windows(tok: CodexTokenizer, rate: float = 0.5, spm_rate: float = 0.5, level: str = "context",
                seed: int = 7) -> FimWindows:
    assert tok.fim_ids is not None
    config = FimConfig(rate=rate, spm_rate=spm_rate, seed=seed, level=level,  # type: ignore[arg-type]
                       sentinels=tok.fim_ids, eos_id=tok.special_ids.eos, pad_id=tok.special_ids.pad)
    return FimWindows(config, tok.hf)


def packed(tok: CodexTokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts packed as the tokenize stage packs them, and their offsets."""
    ids = tok.encode_batch(texts, 1)
    stream = np.concatenate([np.asarray([*x, tok.special_ids.eos], dtype=np.int64) for x in ids])
    offsets = np.concatenate([[0], np.cumsum([len(x) + 1 for x in ids])])
    return stream, offsets


# --- sentinels -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [b for b, _ in BACKENDS])
def test_trained_backends_have_the_sentinels_at_fixed_ids_and_autotokenizer_finds_them(
        backend: str, trained: Trained) -> None:
    from transformers import AutoTokenizer

    tok, folder = trained[backend]
    assert tok.fim_ids == (TRAINED_IDS["prefix"], TRAINED_IDS["middle"], TRAINED_IDS["suffix"]) == (4, 5, 6)
    assert tok.vocab_size == 600  # the sentinels are inside the vocabulary size asked for
    auto = AutoTokenizer.from_pretrained(str(folder))
    assert (auto.fim_prefix_token_id, auto.fim_middle_token_id, auto.fim_suffix_token_id) == (4, 5, 6)
    assert find_sentinels(auto) is not None and find_sentinels(auto).ids() == (4, 5, 6)  # type: ignore[union-attr]
    # Text that spells a sentinel is text, in the backend and in AutoTokenizer alike.
    code = 's = "<fim_prefix>x<fim_middle>y<fim_suffix>"\n'
    ids = tok.encode(code)
    assert not set(ids) & {4, 5, 6} and tok.decode(ids) == code
    assert auto(code, add_special_tokens=False)["input_ids"] == ids


def test_the_resolver_finds_each_pretrained_family_and_names_what_a_base_lacks(texts: list[str]) -> None:
    base = train_family_tokenizer("qwen2", texts[:4])
    with pytest.raises(FimError, match=r"^model.pretrained base-models/x: its tokenizer has no fill-in-the-"
                                       r"middle sentinel tokens \(none of <fim_prefix> .* \(Code Llama\)\): "
                                       r"set train.fim.rate: 0"):
        require_sentinels(base, "model.pretrained base-models/x")
    for spelling in SPELLINGS:
        tok = train_family_tokenizer("qwen2", texts[:4])
        tok.add_special_tokens({"additional_special_tokens": [*spelling.tokens()]})
        found = require_sentinels(tok, "model.pretrained x")
        assert found.spelling == spelling
        assert found.ids() == tuple(tok.convert_tokens_to_ids(t) for t in spelling.tokens())
        assert find_sentinels(tok.backend_tokenizer) == found  # a `tokenizers.Tokenizer` as well
    partial = train_family_tokenizer("qwen2", texts[:4])
    partial.add_special_tokens({"additional_special_tokens": ["<|fim_prefix|>", "<|fim_suffix|>"]})
    with pytest.raises(FimError, match=r"has part of Qwen2.5-Coder.*'s set but not <\|fim_middle\|>\): set"):
        require_sentinels(partial, "model.pretrained y")


def test_the_backends_spelling_is_the_trained_spelling() -> None:
    assert tuple(FIM_TOKENS.values()) == TRAINED.tokens()


# --- the transform ---------------------------------------------------------------------------------


@given(text=st.text(max_size=200), seed=st.integers(0, 2**32), key=st.integers(0, 2**40))
@settings(max_examples=200, deadline=None)
def test_cut_round_trips_and_is_a_pure_function_of_seed_and_key(text: str, seed: int, key: int) -> None:
    d = draw(example_rng(seed, key, "doc.py"), 0.5, 0.5)
    pieces = cut(text, d.cuts)
    assert pieces.text() == text
    assert draw(example_rng(seed, key, "doc.py"), 0.5, 0.5) == d
    assert cut(text, d.cuts) == pieces


def test_cut_points_cover_every_character_position_uniformly() -> None:
    text = "abcd"
    starts = [len(cut(text, draw(example_rng(1, k), 1.0, 0.0).cuts).prefix) for k in range(5000)]
    counts = np.bincount(starts, minlength=5)
    # the smaller of two uniform draws over 0..4: P(i) = (2 * (5 - i) - 1) / 25
    expected = np.array([9, 7, 5, 3, 1]) / 25 * 5000
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_arrange_psm_and_spm() -> None:
    p, m, s = (4, 5, 6)
    assert arrange([10, 11], [20], [30], (p, m, s), spm=False) == [p, 10, 11, s, 30, m, 20]
    assert arrange([10, 11], [20], [30], (p, m, s), spm=True) == [p, s, 30, m, 10, 11, 20]


# --- exact text from packed ids ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", [b for b, _ in BACKENDS])
def test_packed_ids_give_back_each_documents_exact_text(
        backend: str, trained: Trained, texts: list[str]) -> None:
    tok, folder = trained[backend]
    table = TokenBytes(tok.hf)
    unusual = ["naïve = 'ünïcödé ▁ ⁂ 😀'\n\tx = '</s>'", "\u2581\u2581 spaces   \n\n", "'<fim_middle>'"]
    for text, ids in zip(texts + unusual, tok.encode_batch(texts + unusual, 1), strict=True):
        assert table.text(ids) == text
    # as training will load it: tokenizer.json alone, in which special-token text would be special
    saved = Tokenizer.from_file(str(folder / "tokenizer.json"))
    check_round_trip(saved, TokenBytes(saved), texts[:5] + unusual, "models/tokenizer")


def test_a_tokenizer_that_adds_text_is_refused_before_any_example(texts: list[str]) -> None:
    llama = train_family_tokenizer("llama", texts[:4])  # a dummy prefix space: not lossless on code
    table = TokenBytes(llama.backend_tokenizer)
    with pytest.raises(FimError, match=r"^model.pretrained base-models/llama: its tokenizer does not spell "
                                       r"text back byte for byte"):
        check_round_trip(llama.backend_tokenizer, table, texts[:3], "model.pretrained base-models/llama")


# --- windows ---------------------------------------------------------------------------------------


def fragments(ids: np.ndarray, eos: int) -> list[np.ndarray]:
    return np.split(ids, np.flatnonzero(ids == eos) + 1)


def untransform(tok: CodexTokenizer, fragment: np.ndarray) -> str:
    """A FIM fragment's text put back in document order."""
    p, m, s = tok.fim_ids  # type: ignore[misc]
    table = TokenBytes(tok.hf)
    ids = fragment.tolist()
    if ids[:2] == [p, s]:  # SPM: P S suffix M prefix middle
        suffix, rest = ids[2:ids.index(m)], ids[ids.index(m) + 1:]
        return table.join(rest).decode() + table.join(suffix).decode()
    prefix, suffix, middle = ids[1:ids.index(s)], ids[ids.index(s) + 1:ids.index(m)], ids[ids.index(m) + 1:]
    return (table.join(prefix) + table.join(middle) + table.join(suffix)).decode()


@pytest.mark.parametrize("backend", [b for b, _ in BACKENDS])
def test_every_whole_fragment_of_a_window_round_trips_to_its_document(
        backend: str, trained: Trained, texts: list[str]) -> None:
    tok, _ = trained[backend]
    fim = fim_windows(tok, rate=1.0)
    docs = [t[:600] for t in texts[:20]]
    stream, _ = packed(tok, docs)
    out, labels = fim.context(stream, key=(0,), length=len(stream) + 200)  # room for every fragment
    assert out.shape == labels.shape == (len(stream) + 200,) and fim.counts.padded_windows == 1
    assert np.all(labels[out == tok.special_ids.pad] == IGNORE)
    body = out[labels != IGNORE]
    frags = fragments(body, tok.special_ids.eos)[:len(docs)]
    assert len(frags) == len(docs)
    for doc, frag in zip(docs, frags, strict=True):
        assert frag[-1] == tok.special_ids.eos
        assert untransform(tok, frag[:-1]) == doc  # prefix + middle + suffix = the document, exactly
    c = fim.counts
    assert c.transformed == len(docs) and 0 < c.spm < len(docs)


@pytest.mark.parametrize("backend", [b for b, _ in BACKENDS])
def test_a_window_is_the_same_for_any_order_worker_or_rerun(
        backend: str, trained: Trained, texts: list[str]) -> None:
    tok, _ = trained[backend]
    stream, offsets = packed(tok, texts[:30])
    starts = np.random.default_rng(0).integers(0, len(stream) - 256 - MARGIN, size=12)
    window = 256

    def run(order: list[int], fim: FimWindows, level: str) -> dict[int, Any]:
        if level == "context":
            return {i: fim.context(stream[starts[i]:starts[i] + window + MARGIN], (i,), window)
                    for i in order}
        return {i: fim.document_window(stream, offsets, int(starts[i]), window) for i in order}

    for level in ("context", "document"):
        a = run(list(range(12)), fim_windows(tok, level=level), level)
        b = run(list(range(12))[::-1], fim_windows(tok, level=level), level)  # another order
        worker = pickle.loads(pickle.dumps(fim_windows(tok, level=level).config))  # another process
        c = run([3, 7, 1], FimWindows(worker, tok.hf), level)
        for i in range(12):
            assert np.array_equal(a[i][0], b[i][0]) and np.array_equal(a[i][1], b[i][1])
            assert a[i][0].shape == (window,) and not np.any(a[i][1] == IGNORE)
        for i in (3, 7, 1):
            assert np.array_equal(a[i][0], c[i][0])
        other_seed = run(list(range(12)), fim_windows(tok, level=level, seed=8), level)
        assert any(not np.array_equal(a[i][0], other_seed[i][0]) for i in range(12))


def test_rate_zero_is_the_left_to_right_window_and_a_short_one_is_padded(
        trained: Trained, texts: list[str]) -> None:
    tok, _ = trained["hf-bpe"]
    stream, _ = packed(tok, texts[:10])
    out, labels = fim_windows(tok, rate=0.0).context(stream[:2048 + MARGIN], (5,), 2048)
    assert np.array_equal(out, stream[:2048]) and np.array_equal(labels, stream[:2048])
    fim = fim_windows(tok, rate=1.0, spm_rate=0.0)
    out, labels = fim.context(stream[-100:], (6,), 128)  # the stream's end: nothing to spare
    assert fim.counts.spm == 0 and fim.counts.transformed > 0 and fim.counts.padded_windows == 1
    n = int(np.sum(labels != IGNORE))
    assert n >= 100 and np.all(out[n:] == tok.special_ids.pad) and np.all(labels[n:] == IGNORE)
    with pytest.raises(ValueError, match="FIM rates must be in"):
        fim_windows(tok, rate=1.5)


def test_added_tokens_stay_distinct_in_the_byte_table(trained: Trained) -> None:
    tok, _ = trained["sentencepiece"]
    table = TokenBytes(tok.hf)
    assert table.table[tok.hf.token_to_id("\n")] == b"\n"
    assert all(table.table[i] == b"" for i in (0, 1, 2, 3, 4, 5, 6))
