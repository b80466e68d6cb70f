"""Sampling from a model folder: `codex generate`. Streams text as it is produced.

The prompt is encoded without special tokens after one EOS, the start-of-document context the
pipeline's models were trained with (documents follow an EOS in the packed stream). The same seed
gives the same text: generation draws from torch's global generator, seeded just before.

With a suffix the model fills in the middle (docs/fim.md): prefix and suffix go in its FIM sentinels'
prefix-suffix-middle order (eval/infill_spans.py's prompt, the one the infilling eval scores), and what
it writes is the middle, up to EOS (or the family's own end-of-middle token). A model whose tokenizer
has no sentinels cannot be asked: one error saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import torch

from codex_ml.eval.infill_spans import build_prompt
from codex_ml.eval.model import context_window, load_model, load_tokenizer, pick_device, special_ids
from codex_ml.eval.options import Device, SamplingParams
from codex_ml.fim.sentinels import Sentinels, require_sentinels
from codex_ml.runtime import StageError

NO_SENTINELS = ("a model trained with train.fim.rate > 0 has them (every tokenizer the tokenize stage trains "
                "does), as do pretrained code models such as StarCoder and Qwen2.5-Coder")


def fim_sentinels(model_dir: Path, tokenizer: Any) -> Sentinels:
    """The sentinels `--suffix` prompts with, or one FimError naming the model folder."""
    return require_sentinels(tokenizer, f"--suffix: {model_dir}", hint=NO_SENTINELS)


def _streamer(tokenizer: Any, out: TextIO) -> Any:
    from transformers import TextStreamer

    class Streamer(TextStreamer):
        """TextStreamer that writes to `out` instead of printing to stdout."""

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            out.write(text)
            out.flush()

    return Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def generate(model_dir: Path, prompt: str, sampling: SamplingParams, *, tokenizer_dir: Path | None = None,
             device: Device = "auto", stream: TextIO | None = None, suffix: str | None = None) -> str:
    """The completion of `prompt` (without the prompt), written to `stream` as it is produced; with
    `suffix`, the middle between the two."""
    from transformers import GenerationConfig

    sampling.check()
    dev = pick_device(device)
    model = load_model(model_dir, dev)
    tokenizer = load_tokenizer(model_dir, tokenizer_dir)
    eos_id, pad_id = special_ids(tokenizer, model)
    window = context_window(model)
    max_new = sampling.max_new_tokens or min(128, window // 2)
    if max_new >= window:
        raise StageError(f"--max-new-tokens: expected < the model's context window ({window}), got {max_new}")
    ends = [eos_id]
    if suffix is None:
        ids = [eos_id, *tokenizer(prompt, add_special_tokens=False)["input_ids"]]
        ids = ids[-(window - max_new):]  # keep the end of a long prompt
    else:
        sentinels = fim_sentinels(model_dir, tokenizer)
        ends += [sentinels.end] if sentinels.end is not None else []

        def encode(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

        # the end of the prefix and the start of the suffix that fit beside max_new new tokens
        ids = build_prompt(encode(prompt), [], encode(suffix), window=window, room=max_new, eos_id=eos_id,
                           sentinels=sentinels.ids()).fim or []
    greedy = sampling.temperature == 0
    # Every sampling setting explicit: generate() fills unset (None) ones from the model's
    # generation_config.json and then from global defaults (top_k=50), so None would not mean "off".
    config = GenerationConfig(
        max_new_tokens=max_new, do_sample=not greedy, num_beams=1,
        temperature=1.0 if greedy else sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
        eos_token_id=ends, pad_token_id=pad_id)
    torch.manual_seed(sampling.seed)
    with torch.inference_mode():
        out = model.generate(  # type: ignore[operator]
            input_ids=torch.tensor([ids], device=dev), attention_mask=torch.ones((1, len(ids)), device=dev,
                                                                                  dtype=torch.long),
            generation_config=config, streamer=_streamer(tokenizer, stream) if stream is not None else None)
    new = out[0, len(ids):].tolist()
    return str(tokenizer.decode(new, skip_special_tokens=True))
