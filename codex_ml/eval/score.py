"""Per-document negative log-likelihood and next-token accuracy from sliding windows.

Windows of a batch are right-padded to the longest. Under a causal mask no real position attends to a
later (padding) one, so no attention mask is needed and each real position's logits equal those of the
unpadded window; padding outputs are never read.

A window's scored targets are always a suffix of it (windows.py), so only the batch's last `keep`
positions can matter. For a model with a plain output layer (models/head.py: Llama) the decoder's hidden
states at the scored positions alone go through the head, a block of rows at a time, each block reduced
to NLL and argmax while it is in cache: no [tokens, vocab] logits are ever written. Other models run
their own forward, with `logits_to_keep` when they support it (with the default stride of half a window
that skips half of the vocab-sized head on every window after a document's first), and the reductions
run over the kept logits.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from codex_ml.eval.windows import Window, plan
from codex_ml.models.head import linear_nll, logsumexp_argmax_, plain_head
from codex_ml.runtime import progress


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, T] int64, right-padded
    keep: int  # logits of the last `keep` positions hold every scored one
    rows: torch.Tensor  # [K] row of each scored position
    cols: torch.Tensor  # [K] column, among the last `keep` positions, whose logits predict the target
    targets: torch.Tensor  # [K] target ids
    docs: np.ndarray  # [K] document index of each target


@dataclass(frozen=True)
class DocScores:
    nll: np.ndarray  # [D] float64: summed NLL in nats per document
    tokens: np.ndarray  # [D] int64: scored tokens per document
    correct: np.ndarray  # [D] int64: targets that were the argmax prediction


def sequences(doc_ids: list[np.ndarray], eos_id: int) -> list[np.ndarray]:
    """`[EOS] + ids` per document: the leading EOS is the document-start context (see windows.py)."""
    return [np.concatenate([np.array([eos_id], dtype=np.int64), ids.astype(np.int64)]) for ids in doc_ids]


def make_batches(seqs: list[np.ndarray], windows: list[Window], batch_size: int,
                 pad_id: int) -> Iterator[Batch]:
    for lo in range(0, len(windows), batch_size):
        chunk = windows[lo:lo + batch_size]
        width = max(w.length for w in chunk)
        inputs = np.full((len(chunk), width), pad_id, dtype=np.int64)
        keep = width - min(w.first - 1 - w.start for w in chunk)
        rows, cols, targets, docs = [], [], [], []
        for r, w in enumerate(chunk):
            s = seqs[w.doc]
            inputs[r, :w.length] = s[w.start:w.end]
            t = np.arange(w.first, w.end + 1)  # targets s[t], predicted at column t - 1 - start
            rows.append(np.full(len(t), r))
            cols.append(t - 1 - w.start - (width - keep))
            targets.append(s[t])
            docs.append(np.full(len(t), w.doc))
        yield Batch(torch.from_numpy(inputs), keep, torch.from_numpy(np.concatenate(rows)),
                    torch.from_numpy(np.concatenate(cols)), torch.from_numpy(np.concatenate(targets)),
                    np.concatenate(docs))


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def score_batch(model: torch.nn.Module, batch: Batch, device: torch.device,
                trim: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-target NLL (nats, float64) and whether the argmax was the target. `trim`: pass
    `logits_to_keep` (the caller checked the model accepts it) where the head is not plain."""
    rows, cols, targets = batch.rows.to(device), batch.cols.to(device), batch.targets.to(device)
    head = plain_head(model)
    if head is not None:
        decoder, lm_head = head
        hidden = decoder(input_ids=batch.input_ids.to(device), use_cache=False).last_hidden_state
        nll, hit = linear_nll(hidden[:, -batch.keep:][rows, cols], lm_head.weight, targets)
        return nll.double().cpu().numpy(), hit.cpu().numpy()
    if trim:
        logits = model(input_ids=batch.input_ids.to(device), use_cache=False,
                       logits_to_keep=batch.keep).logits
    else:
        logits = model(input_ids=batch.input_ids.to(device), use_cache=False).logits[:, -batch.keep:]
    logits = logits.float()  # no copy for fp32 models; bf16 ones are reduced in fp32
    # NLL = logsumexp - target logit (what cross_entropy computes). The reductions run over the kept
    # positions in place, because gathering the scored rows first would copy a [K, V] tensor, as
    # costly as the reductions themselves. Only windows that score fewer than `keep` positions (a
    # document's last) waste a little here.
    picked = logits[rows, cols, targets]  # before the reduction overwrites the logits
    lse, pred = logsumexp_argmax_(logits)
    nll = lse[rows, cols] - picked
    hit = pred[rows, cols] == targets
    return nll.double().cpu().numpy(), hit.cpu().numpy()


def accumulate(scores: DocScores, batch: Batch, nll: np.ndarray, hit: np.ndarray) -> None:
    np.add.at(scores.nll, batch.docs, nll)  # sequential: the same sums on every run
    np.add.at(scores.tokens, batch.docs, 1)
    np.add.at(scores.correct, batch.docs, hit.astype(np.int64))


def score_documents(model: torch.nn.Module, doc_ids: list[np.ndarray], *, window: int, stride: int,
                    batch_size: int, eos_id: int, pad_id: int, device: torch.device,
                    desc: str = "eval") -> DocScores:
    seqs = sequences(doc_ids, eos_id)
    windows = plan([len(ids) for ids in doc_ids], window, stride)
    n = len(doc_ids)
    scores = DocScores(nll=np.zeros(n, dtype=np.float64), tokens=np.zeros(n, dtype=np.int64),
                       correct=np.zeros(n, dtype=np.int64))
    n_batches = (len(windows) + batch_size - 1) // batch_size
    trim = accepts_logits_to_keep(model)
    with torch.inference_mode():
        for batch in progress(make_batches(seqs, windows, batch_size, pad_id), desc=desc, unit="batch",
                              total=n_batches):
            accumulate(scores, batch, *score_batch(model, batch, device, trim))
    return scores
