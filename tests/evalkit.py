"""Real artifacts in the pipeline's file formats (docs/pipeline.md) for eval, generate and report tests,
made without the tokenize and train stages: a byte-level tokenizer whose token ids are exactly the
UTF-8 bytes of the text, token files in the `meta.json` format, and a small Llama model folder."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from codex_ml.handoffs import TokenMeta
from codex_ml.params import InfillParams
from codex_ml.paths import SPLITS
from codex_ml.shards import SplitIndex, iter_prepared, write_token_split
from codex_ml.tokenization.hf_bpe import unicode_to_byte

PAD, BOS, EOS, UNK = 256, 257, 258, 259
VOCAB = 264  # 256 bytes + 4 specials, rounded up to a multiple of 8
NO_INFILL = InfillParams(line=0, block=0)  # for tests about something else: infilling costs generation


def byte_tokenizer(folder: Path):  # -> PreTrainedTokenizerFast
    """A tokenizer loadable by AutoTokenizer in which token id = byte value (specials from 256)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = unicode_to_byte()  # byte-level BPE's printable character for each byte -> the byte
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    return fast


def tiny_llama(seed: int = 0, window: int = 64, hidden: int = 32, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=window, pad_token_id=PAD, bos_token_id=BOS,
                         eos_token_id=EOS, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def train_briefly(model, texts: list[str], steps: int = 30, window: int = 64, seed: int = 0,
                  live_dir: Path | None = None) -> None:
    """A few real optimizer steps on byte windows, so the model predicts better than chance; with
    `live_dir`, logged by dvclive under the train stage's metric names (with system telemetry)."""
    import time

    live = None
    if live_dir is not None:
        import dvclive.monitor_system
        from dvclive import Live

        dvclive.monitor_system.GPU_AVAILABLE = False  # no NVML here: it would abort every sample
        live = Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
        live.monitor_system(interval=0.05, num_samples=4)
    stream = np.concatenate([np.frombuffer((t.encode() + bytes([0])), dtype=np.uint8).astype(np.int64)
                             for t in texts])
    stream[stream == 0] = EOS
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        t0 = time.perf_counter()
        starts = rng.integers(0, len(stream) - window - 1, size=8)
        x = torch.from_numpy(np.stack([stream[s:s + window] for s in starts]))
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if live is not None:
            live.step = step + 1
            live.log_metric("train/loss", float(loss.detach()))
            live.log_metric("train/learning_rate", 3e-3)
            live.log_metric("train/tokens_per_s", x.numel() / (time.perf_counter() - t0))
            if (step + 1) % 10 == 0:
                with torch.no_grad():
                    live.log_metric("val/loss", float(model(input_ids=x, labels=x).loss))
    if live is not None:
        deadline = time.monotonic() + 3
        while "system" not in live.summary and time.monotonic() < deadline:
            time.sleep(0.05)  # the monitor's first sample arrives after interval x num_samples
        live.end()
    model.eval()


def save_model(model, tokenizer_dir: Path, folder: Path) -> Path:
    from transformers import AutoTokenizer

    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return folder


def write_tokens(prepared: Path, out: Path, dtype: str = "uint16") -> TokenMeta:
    """data/tokens (token shards, index, meta.json: docs/pipeline.md) with byte-level ids: id = UTF-8
    byte."""
    out.mkdir(parents=True, exist_ok=True)
    meta: dict = {"dtype": dtype, "vocab_size": VOCAB, "backend": "bytes", "pad_id": PAD, "bos_id": BOS,
                  "eos_id": EOS, "unk_id": UNK, "splits": {}}
    for split in SPLITS:
        records = [r for _, r in iter_prepared(prepared, split)]
        docs = [[*r["text"].encode("utf-8"), EOS] for r in records]
        index = SplitIndex(paths=[r["path"] for r in records], bytes=[r["bytes"] for r in records],
                           tokens=[len(d) for d in docs])
        stream = np.asarray([i for d in docs for i in d], dtype=dtype)
        meta["splits"][split] = write_token_split(out, split, stream, index)
    token_meta = TokenMeta(**meta)
    token_meta.save(out)
    return token_meta


def truncated_corpus(stdlib_sample: Path, out: Path, max_bytes: int) -> Path:
    """A copy of the sample with each file cut to `max_bytes` at a line end: real code, less of it."""
    for p in sorted(stdlib_sample.rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        if len(text.encode()) > max_bytes:
            text = text[:text.rindex("\n", 0, max_bytes) + 1]
        target = out / p.relative_to(stdlib_sample)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return out


def build_workspace(root: Path, stdlib_sample: Path, *, train_steps: int = 40, window: int = 64,
                    max_bytes: int = 3000, val_fraction: float = 0.1, test_fraction: float = 0.1,
                    live: bool = False) -> Path:
    """A workspace as the pipeline leaves it before eval: data/prepared + metrics/prepare.json from
    the real prepare stage (on the sample, files cut to `max_bytes`), byte-level data/tokens and
    models/tokenizer, and a briefly trained models/trained (with `live`: dvclive metrics in
    metrics/train, under the train stage's metric names), copied to models/model as release would
    (for the `codex` commands, which take models/model)."""
    from codex_ml.data.stage import prepare
    from codex_ml.params import DataParams

    corpus = truncated_corpus(stdlib_sample, root / "corpus", max_bytes)
    data = DataParams(source="dir", path=str(corpus), val_fraction=val_fraction, test_fraction=test_fraction)
    prepare(data, root / "data" / "prepared", root / "metrics" / "prepare.json")
    write_tokens(root / "data" / "prepared", root / "data" / "tokens")
    byte_tokenizer(root / "models" / "tokenizer")
    model = tiny_llama(window=window)
    if train_steps:
        train = [r["text"] for _, r in iter_prepared(root / "data" / "prepared", "train")]
        train_briefly(model, train, steps=train_steps, window=window,
                      live_dir=root / "metrics" / "train" if live else None)
    save_model(model, root / "models" / "tokenizer", root / "models" / "trained")
    shutil.copytree(root / "models" / "trained", root / "models" / "model")
    return root


def stdlib_docs(n: int, max_bytes: int) -> list[np.ndarray]:
    """Byte ids (+ EOS) of the first `max_bytes` of a few real stdlib modules."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for name in ("bisect.py", "colorsys.py", "keyword.py", "heapq.py")[:n]:
        data = (root / name).read_bytes()[:max_bytes]
        out.append(np.array([*data, EOS], dtype=np.int64))
    return out


_SHARED: dict[tuple[str, int, bool], Path] = {}


def shared_workspace(tmp_path_factory: pytest.TempPathFactory, stdlib_sample: Path) -> Path:
    """build_workspace(live=True), built once per session: tests copy it before changing anything."""
    key = (str(stdlib_sample), 40, True)
    if key not in _SHARED:
        _SHARED[key] = build_workspace(tmp_path_factory.mktemp("workspace"), stdlib_sample, train_steps=40,
                                       live=True)
    return _SHARED[key]
