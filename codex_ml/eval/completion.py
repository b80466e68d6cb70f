"""Line completion: the model sees a document up to the start of a line and greedily writes the line.

A line is eligible when it is not the document's first (there must be something to condition on) and
has a non-space character. Samples are drawn uniformly without replacement from all eligible lines of
a split (seeded). The prompt is `[EOS] + tokens(text before the line)`, cut from the left to
`window - max_new_tokens` tokens so prompt and completion fit the model's context. Generation stops
at the first token whose text contains a newline, at EOS, or after `max_new_tokens`. The completion is
the generated text up to its first newline; it matches when it equals the line, trailing whitespace
aside (indentation must match: it is syntax in Python).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from codex_ml.runtime import progress


@dataclass(frozen=True)
class LineSample:
    doc: int  # index of the document in its split
    line: int  # 1-based line number
    start: int  # character offset of the line in the document's text
    target: str  # the line, without its newline


def eligible_lines(text: str) -> list[tuple[int, int, str]]:
    out = []
    start = 0
    for n, line in enumerate(text.split("\n"), 1):
        if n > 1 and line.strip():
            out.append((n, start, line))
        start += len(line) + 1
    return out


def sample_lines(texts: list[str], n: int, seed: int | list[int]) -> list[LineSample]:
    pool = [LineSample(d, n_line, start, line) for d, text in enumerate(texts)
            for n_line, start, line in eligible_lines(text)]
    if n <= 0 or not pool:
        return []
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))
    return [pool[i] for i in picked]


def is_match(completion: str, target: str) -> bool:
    return completion.rstrip() == target.rstrip()


class _StopAtNewline:
    """Stopping criterion: a sequence is done once its last token's text contains a newline."""

    def __init__(self, newline_ids: torch.Tensor) -> None:
        self.newline_ids = newline_ids  # [V] bool

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        last = input_ids[:, -1].clamp(max=self.newline_ids.shape[0] - 1)
        return self.newline_ids.to(input_ids.device)[last]


def newline_token_mask(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    for i in range(min(vocab_size, len(tokenizer))):
        if "\n" in tokenizer.decode([i]):
            mask[i] = True
    return mask


def stopping_criteria(tokenizer: Any, model: torch.nn.Module) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopAtNewline(_StopAtNewline, StoppingCriteria):
        pass

    vocab = int(model.get_output_embeddings().weight.shape[0])  # type: ignore[operator]
    return StoppingCriteriaList([StopAtNewline(newline_token_mask(tokenizer, vocab))])


def prompt_ids(tokenizer: Any, prefix: str, eos_id: int, max_len: int) -> list[int]:
    ids = [eos_id, *tokenizer(prefix, add_special_tokens=False)["input_ids"]]
    return ids[-max_len:]


def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of prompts, left-padded so every one ends where generation starts: (ids, attention mask)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    return ids, mask


def completion_text(tokenizer: Any, prompt: list[int], new: list[int]) -> str:
    """The generated text, decoded in context: some tokenizers (SentencePiece) drop or merge spaces
    at the edge of a piece decoded alone, so decode prompt+new and take what follows the prompt."""
    full = tokenizer.decode(prompt + new, skip_special_tokens=True)
    head = tokenizer.decode(prompt, skip_special_tokens=True)
    if full.startswith(head):
        return full[len(head):]
    return tokenizer.decode(new, skip_special_tokens=True)


def complete_lines(model: torch.nn.Module, tokenizer: Any, texts: list[str], samples: list[LineSample], *,
                   window: int, max_new_tokens: int, batch_size: int, eos_id: int, pad_id: int,
                   device: torch.device, desc: str = "completion") -> list[str]:
    """Greedy completions (text up to the first newline) for `samples`, in their order."""
    from transformers import GenerationConfig

    if max_new_tokens >= window:
        raise ValueError(f"max_new_tokens ({max_new_tokens}) must be < the context window ({window})")
    prompts = [prompt_ids(tokenizer, texts[s.doc][:s.start], eos_id, window - max_new_tokens)
               for s in samples]
    # Batch prompts of similar length together (less padding); the order is fixed, so are the batches.
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              eos_token_id=eos_id, pad_token_id=pad_id)
    stop = stopping_criteria(tokenizer, model)
    out: list[str] = [""] * len(prompts)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for batch in progress(batches, desc=desc, unit="batch"):
            ids, mask = left_padded([prompts[i] for i in batch], pad_id)
            width = ids.shape[1]
            gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),  # type: ignore[operator]
                                 generation_config=config, stopping_criteria=stop)
            for r, i in enumerate(batch):
                new = [t for t in gen[r, width:].tolist()]
                if eos_id in new:
                    new = new[:new.index(eos_id)]
                out[i] = completion_text(tokenizer, prompts[i], new).split("\n", 1)[0]
    return out
