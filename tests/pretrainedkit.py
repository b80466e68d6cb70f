"""Tiny "pretrained" model folders of real architectures, each with its own small trained tokenizer.

Nothing is downloaded: each family's config is the real transformers class at a toy size, randomly
initialised from a seed, and its tokenizer is trained here with `tokenizers` the way that family's
tokenizer is built (GPT-2/Qwen2/NeoX/Phi: byte-level BPE with `<|endoftext|>`; Llama: SentencePiece-style
BPE with a metaspace dummy prefix, byte fallback and a BOS the tokenizer adds itself, so not lossless
on code). Each is saved with `save_pretrained`, exactly as a user's model folder would be.
`hub_cache` lays a folder out as the Hugging Face cache does, for the offline hub-id path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

FAMILIES = ("gpt2", "llama", "qwen2", "gpt_neox", "phi")
WINDOW = 128  # positions of every fixture


def train_family_tokenizer(family: str, texts: list[str], vocab_size: int = 400) -> Any:
    """A PreTrainedTokenizerFast trained on `texts` with `family`'s special tokens and pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family == "llama":
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                      show_progress=False)
        tok.train_from_iterator(texts, trainer)
        # As in Llama's own tokenizer.json, the 256 byte pieces are ordinary vocabulary (ids 3-258).
        data = json.loads(tok.to_str())
        vocab = data["model"]["vocab"]
        learned = sorted((i, t) for t, i in vocab.items() if i >= 3)
        vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
        vocab.update({t: 259 + n for n, (_, t) in enumerate(learned)})
        data["model"]["vocab"] = vocab
        for added in data["added_tokens"]:
            added["id"] = vocab[added["content"]]
        tok = Tokenizer.from_str(json.dumps(data))
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                       unk_token="<unk>")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    end = "<|endoftext|>"
    if family == "qwen2":  # Qwen2: no BOS, pad is <|endoftext|>
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=end, pad_token=end)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=end, eos_token=end, unk_token=end)


def family_config(family: str, tokenizer: Any) -> Any:
    """A toy-sized config of the family's real class, special ids from the tokenizer."""
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, PhiConfig, Qwen2Config

    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if family == "gpt2":
        return GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=WINDOW, **ids)
    if family == "phi":  # a head with a bias, partial rotary: no fused loss
        return PhiConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=WINDOW, **ids)
    if family == "gpt_neox":
        return GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=WINDOW, tie_word_embeddings=False, **ids)
    cls = LlamaConfig if family == "llama" else Qwen2Config
    return cls(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=WINDOW, tie_word_embeddings=True, **ids)


def make_pretrained(family: str, texts: list[str], folder: Path, seed: int = 0) -> Path:
    """A random-init `family` model with its own tokenizer trained on `texts`, saved to `folder`."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = train_family_tokenizer(family, texts)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(family_config(family, tokenizer), dtype=torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def hub_cache(folder: Path, hf_home: Path, repo_id: str, revision: str = "0" * 40) -> Path:
    """Lay `folder` out in `hf_home` as huggingface_hub's cache holds a downloaded snapshot
    (hub/models--org--name/{blobs,snapshots/<rev>,refs/main}); returns the snapshot folder."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in sorted(folder.iterdir()):
        blob = repo / "blobs" / f.name
        shutil.copyfile(f, blob)
        (snapshot / f.name).symlink_to(Path("../../blobs") / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot
