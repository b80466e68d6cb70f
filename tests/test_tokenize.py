"""Tokenizer backends on real stdlib code: exact AutoTokenizer loading, lossless round trip (also
for arbitrary Unicode, by hypothesis), determinism, bad params and broken tokenizer folders."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_ml.params import ParamsError, parse_params
from codex_ml.tokenization import CodexTokenizer, TokenizerError, load_tokenizer, train_tokenizer
from codex_ml.tokenization.codex_tokenizer import SPECIAL_TOKENS
from codex_ml.tokenization.sentencepiece_backend import SPACE_SYMBOL
from tests.tokenizekit import (
    KIND_IDS,
    KINDS,
    folder_bytes,
    held_out_documents,
    sample_documents,
    small_params,
)

Trained = Callable[[str, str], tuple[CodexTokenizer, Path]]


@pytest.fixture(scope="module")
def trained(stdlib_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Tokenizers trained on the real stdlib sample and saved, one per (backend, model_type),
    trained the first time a test asks (the unigram trainer is the slow one)."""
    texts = [text for _, text in sample_documents(stdlib_sample)]
    cache: dict[tuple[str, str], tuple[CodexTokenizer, Path]] = {}

    def get(backend: str, model_type: str) -> tuple[CodexTokenizer, Path]:
        if (backend, model_type) not in cache:
            # SentencePiece's unigram trainer is ~10x slower than BPE: half the sample is plenty.
            train_texts = texts[:20] if model_type == "unigram" else texts
            tok = train_tokenizer(train_texts, small_params(backend, model_type))
            folder = tmp_path_factory.mktemp(f"tok-{backend}-{model_type}")
            tok.save(folder)
            cache[backend, model_type] = (tok, folder)
        return cache[backend, model_type]

    return get


@pytest.fixture(scope="module")
def autotokenizers(trained: Trained) -> Callable[[str, str], Any]:
    from transformers import AutoTokenizer

    cache: dict[tuple[str, str], Any] = {}

    def get(backend: str, model_type: str) -> Any:
        if (backend, model_type) not in cache:
            cache[backend, model_type] = AutoTokenizer.from_pretrained(str(trained(backend, model_type)[1]))
        return cache[backend, model_type]

    return get


@pytest.mark.parametrize(("backend", "model_type"), KINDS, ids=KIND_IDS)
def test_autotokenizer_gives_the_backend_ids_on_real_documents(
        backend: str, model_type: str, trained: Trained, autotokenizers: Callable[[str, str], Any],
        stdlib_sample: Path) -> None:
    tok, folder = trained(backend, model_type)
    loaded = load_tokenizer(folder)
    auto = autotokenizers(backend, model_type)
    docs = sample_documents(stdlib_sample)[:12] + held_out_documents()
    texts = [text for _, text in docs]
    ids = tok.encode_batch(texts, 2)
    assert loaded.encode_batch(texts, 2) == ids  # the saved folder is the trained tokenizer
    assert auto.bos_token_id == tok.special_ids.bos and auto.eos_token_id == tok.special_ids.eos
    assert auto.pad_token_id == tok.special_ids.pad and auto.unk_token_id == tok.special_ids.unk
    assert len(auto) == tok.vocab_size
    for (path, text), doc_ids in zip(docs, ids, strict=True):
        assert auto.encode(text) == doc_ids, path  # as users call it: default arguments
        assert auto(text)["input_ids"] == doc_ids, path
        assert tok.decode(doc_ids) == text, path
        assert auto.decode(doc_ids) == text, path
    if backend == "sentencepiece" and model_type == "bpe":
        # ... and those ids are SentencePiece's own, straight from the library.
        sp = spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.model"))
        assert [sp.encode(t) for t in texts] == ids
    # Held-out text has characters the sample never showed: they went through byte fallback.
    table = tok.byte_fallback_table()
    assert any(table[i] for doc_ids in ids for i in doc_ids)


@pytest.mark.parametrize(("backend", "model_type"), KINDS, ids=KIND_IDS)
def test_special_token_text_and_space_symbol_are_plain_text(
        backend: str, model_type: str, trained: Trained, autotokenizers: Callable[[str, str], Any]) -> None:
    tok, _ = trained(backend, model_type)
    auto = autotokenizers(backend, model_type)
    text = f"x = '<s>' + \"</s>\"  # <unk> <pad> <0x41> a{SPACE_SYMBOL}b {SPACE_SYMBOL}\n"
    ids = tok.encode(text)
    assert not set(ids) & {tok.special_ids.bos, tok.special_ids.eos, tok.special_ids.pad,
                           tok.special_ids.unk}
    assert tok.decode(ids) == text
    assert auto.encode(text) == ids and auto.decode(ids) == text
    if backend == "sentencepiece":  # U+2581 is its three UTF-8 bytes, never a space
        space_bytes = [tok.hf.token_to_id(f"<0x{b:02X}>") for b in SPACE_SYMBOL.encode()]
        assert any(ids[i:i + 3] == space_bytes for i in range(len(ids)))
    # Special ids decode to nothing, so a packed stream decodes to its documents.
    assert tok.decode([tok.special_ids.bos, *ids, tok.special_ids.eos, tok.special_ids.pad]) == text


# Arbitrary Unicode (hypothesis' text() already spans every plane, controls and combining marks),
# and code-like mixtures of the pieces that broke tokenizers before.
TEXTS = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from([" ", "  ", "\n", "\t", "\r\n", SPACE_SYMBOL, "</s>", "<s>", "<0x0A>", "def",
                              "0", "12", "é", "😀", "\x00", "\u200b", "    return x\n"]),
             max_size=40).map("".join),
)


@pytest.mark.parametrize(("backend", "model_type"), KINDS, ids=KIND_IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_decode_encode_is_identity_for_any_text(
        backend: str, model_type: str, trained: Trained, text: str) -> None:
    tok, _ = trained(backend, model_type)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    # tok.hf is exactly what AutoTokenizer wraps (tested above on real files); it agrees here too.
    assert tok.hf.encode(text).ids == ids


@pytest.mark.parametrize(("backend", "model_type"), KINDS, ids=KIND_IDS)
def test_training_is_deterministic(backend: str, model_type: str, stdlib_sample: Path,
                                   tmp_path: Path) -> None:
    texts = [text for _, text in sample_documents(stdlib_sample)[:6]]  # ~60 kB: quick for unigram too
    for run in ("a", "b"):
        train_tokenizer(texts, small_params(backend, model_type, 400)).save(tmp_path / run)
    a, b = folder_bytes(tmp_path / "a"), folder_bytes(tmp_path / "b")
    assert set(a) >= {"tokenizer.json", "tokenizer_config.json", "codex_tokenizer.json"}
    assert a == b


def test_thread_count_changes_nothing(trained: Trained, stdlib_sample: Path) -> None:
    texts = [text for _, text in sample_documents(stdlib_sample)]
    tok, _ = trained("sentencepiece", "bpe")
    assert tok.encode_batch(texts, 1) == tok.encode_batch(texts, 2) == tok.encode_batch(texts, 5)


def test_saved_folder_describes_itself(trained: Trained) -> None:
    tok, folder = trained("sentencepiece", "bpe")
    config = json.loads((folder / "codex_tokenizer.json").read_text())
    assert config["backend"] == "sentencepiece" and config["model_type"] == "bpe"
    assert config["vocab_size"] == tok.vocab_size == 600
    assert {k: config[f"{k}_id"] for k in SPECIAL_TOKENS} == {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
    hf_tok, _ = trained("hf-bpe", "bpe")
    assert hf_tok.special_ids == tok.special_ids  # same ids across backends


def test_byte_fallback_table(trained: Trained) -> None:
    sp_tok, _ = trained("sentencepiece", "bpe")
    table = sp_tok.byte_fallback_table()
    assert table.sum() == 256 and table[sp_tok.hf.token_to_id("<0xE2>")]
    assert not table[sp_tok.special_ids.eos] and not table[sp_tok.hf.token_to_id("\n")]
    hf_tok, _ = trained("hf-bpe", "bpe")
    table = hf_tok.byte_fallback_table()
    assert not table[hf_tok.hf.token_to_id("a")]  # ASCII: a whole character
    assert table[hf_tok.hf.token_to_id("â")]  # byte 0xE2 alone: part of a character
    assert not table[hf_tok.special_ids.eos]
    assert table.sum() >= 128  # bytes 0x80-0xFF alone, and merges that stop inside a character


@pytest.mark.parametrize(("section", "key"), [
    ({"vocab_size": 100}, "tokenizer.vocab_size"),
    ({"vocab_size": 2**32 + 1}, "tokenizer.vocab_size"),
    ({"vocab_size": "8k"}, "tokenizer.vocab_size"),
    ({"backend": "wordpiece"}, "tokenizer.backend"),
    ({"backend": "hf-bpe", "model_type": "unigram"}, "tokenizer.model_type"),
    ({"model_type": "char"}, "tokenizer.model_type"),
    ({"max_sentence_length": 9}, "tokenizer.max_sentence_length"),
    ({"workers": -1}, "tokenizer.workers"),
    ({"vocab": 8192}, "tokenizer.vocab"),
])
def test_bad_params_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ParamsError, match=rf"params.yaml: {key}"):
        parse_params({"tokenizer": section}, "params.yaml")


def test_vocab_too_small_for_the_corpus_is_one_clear_error(stdlib_sample: Path) -> None:
    texts = [text for _, text in sample_documents(stdlib_sample)[:5]]
    # Valid for the schema, but these files use more than 20 distinct characters.
    with pytest.raises(TokenizerError, match=r"^tokenizer.vocab_size: 282 is too small for this corpus: "
                                             r".* need at least \d+$"):
        train_tokenizer(texts, small_params("sentencepiece", "bpe", 282))
    with pytest.raises(TokenizerError, match=r"^tokenizer.vocab_size: 60000 is more than SentencePiece bpe "
                                             r"can learn from this corpus \(at most \d+\)$"):
        train_tokenizer(texts, small_params("sentencepiece", "bpe", 60000))
    with pytest.raises(TokenizerError, match="nothing to train on"):
        train_tokenizer(["", ""], small_params("hf-bpe"))


def _remove(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _edit_config(**changes: Any) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / "codex_tokenizer.json").read_text())
        config.update(changes)
        (folder / "codex_tokenizer.json").write_text(json.dumps(config))
    return edit


@pytest.mark.parametrize(("breakage", "message"), [
    (lambda folder: shutil.rmtree(folder), "no such tokenizer folder"),
    (_remove("codex_tokenizer.json"), r"not a codex tokenizer folder \(codex_tokenizer.json is missing\)"),
    (_write("codex_tokenizer.json", b"{not json"), r"codex_tokenizer.json: not valid JSON"),
    (_edit_config(format=99), r"codex_tokenizer.json: format: expected 1, got 99"),
    (_edit_config(backend="wordpiece"), r"codex_tokenizer.json: backend: expected one of"),
    (_edit_config(eos_id=7), r"codex_tokenizer.json: eos_id is 7 but tokenizer.json has </s> at id 2"),
    (_remove("tokenizer.json"), r"incomplete tokenizer folder \(tokenizer.json is missing\)"),
    (_write("tokenizer.json", b'{"version": "1.0", "model": 3}'),
     r"tokenizer.json: not a valid tokenizers file"),
    (_remove("sentencepiece.model"), r"incomplete tokenizer folder \(sentencepiece.model is missing\)"),
    (_write("sentencepiece.model", b"\x00garbage"),
     r"sentencepiece.model: not a valid SentencePiece model"),
], ids=["no-folder", "no-config", "bad-json", "format", "backend", "special-ids", "no-tokenizer-json",
        "bad-tokenizer-json", "no-sp-model", "bad-sp-model"])
def test_broken_tokenizer_folder_is_one_clear_error(breakage: Callable[[Path], None], message: str,
                                                    trained: Trained, tmp_path: Path) -> None:
    _, folder = trained("sentencepiece", "bpe")
    broken = tmp_path / "tokenizer"
    shutil.copytree(folder, broken)
    breakage(broken)
    with pytest.raises(TokenizerError, match=message) as info:
        load_tokenizer(broken)
    assert str(broken) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_file_is_not_a_tokenizer_folder(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("x")
    with pytest.raises(TokenizerError, match="not a folder"):
        load_tokenizer(tmp_path / "tok")


def test_files_from_two_trainings_are_refused(trained: Trained, stdlib_sample: Path, tmp_path: Path) -> None:
    _, folder = trained("sentencepiece", "bpe")  # 600 tokens
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    texts = [text for _, text in sample_documents(stdlib_sample)[:6]]
    train_tokenizer(texts, small_params("sentencepiece", "bpe", 400)).save(tmp_path / "other")
    shutil.copyfile(tmp_path / "other" / "sentencepiece.model", mixed / "sentencepiece.model")
    with pytest.raises(TokenizerError, match=r"sentencepiece\.model has 400 pieces but tokenizer\.json "
                                             r"has 600 tokens"):
        load_tokenizer(mixed)
