"""The FIM transform (Bavarian et al. 2022): a text cut at two character positions into prefix, middle
and suffix, each piece encoded on its own and the three arranged with sentinels:

- PSM (prefix-suffix-middle): `<fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle`
- SPM (suffix-prefix-middle), the paper's variant that keeps prefix and middle adjacent:
  `<fim_prefix> <fim_suffix> suffix <fim_middle> prefix middle`

The two cut points are drawn uniformly over the text's character positions (0 to len, both
included, so any piece may be empty). Characters, not tokens: an editor's cursor sits between any
two characters, and a model trained on token-aligned cuts never learns to finish a token a cut split.

Every random choice of an example comes from its own generator, seeded by the run's seed and the
example's stable key (`example_rng`), drawn in a fixed order (FIM or not, PSM or SPM, the two cuts):
an example is the same whichever worker makes it, in whatever order, on any rerun.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Mixed into every FIM generator's seed, so FIM's draws never repeat those of the window sampler,
# which seeds numpy with [seed, block] alone.
_FIM_STREAM = 0x46494D  # "FIM"


def key_int(part: int | str) -> int:
    """A key part as a non-negative integer: ints as they are, strings (a document's path) by hash."""
    if isinstance(part, int):
        if part < 0:
            raise ValueError(f"FIM example keys are non-negative, got {part}")
        return part
    return int.from_bytes(hashlib.sha256(part.encode("utf-8")).digest()[:8], "big")


def example_rng(seed: int, *key: int | str) -> np.random.Generator:
    """The generator of one example: a pure function of the run's seed and the example's key."""
    return np.random.default_rng([_FIM_STREAM, key_int(seed), *(key_int(k) for k in key)])


@dataclass(frozen=True)
class Draw:
    """One example's random choices, drawn in a fixed order from its generator."""

    fim: bool  # transform at all (probability `rate`)
    spm: bool  # SPM rather than PSM (probability `spm_rate`, among FIM examples)
    cuts: tuple[float, float]  # two uniform draws in [0, 1), mapped to character positions by `cut`


def draw(rng: np.random.Generator, rate: float, spm_rate: float) -> Draw:
    u = rng.random(4)  # always four draws, used or not: one example's choices never shift another's
    return Draw(bool(u[0] < rate), bool(u[1] < spm_rate), (float(u[2]), float(u[3])))


@dataclass(frozen=True)
class Pieces:
    prefix: str
    middle: str
    suffix: str

    def text(self) -> str:
        return self.prefix + self.middle + self.suffix


def cut(text: str, cuts: tuple[float, float]) -> Pieces:
    """`text` cut at two character positions, uniform over 0..len(text) (both ends included)."""
    n = len(text)
    i, j = sorted(min(int(c * (n + 1)), n) for c in cuts)
    return Pieces(text[:i], text[i:j], text[j:])


def arrange(prefix: Sequence[int], middle: Sequence[int], suffix: Sequence[int],
            sentinels: tuple[int, int, int], spm: bool) -> list[int]:
    """The pieces' ids in FIM order; `sentinels` is (prefix, middle, suffix) ids."""
    p, m, s = sentinels
    if spm:
        return [p, s, *suffix, m, *prefix, *middle]
    return [p, *prefix, s, *suffix, m, *middle]


def prompt(prefix: Sequence[int], suffix: Sequence[int], sentinels: tuple[int, int, int],
           spm: bool = False) -> list[int]:
    """What a model gets to write the middle: the arrangement up to where the middle starts (both
    orders end there: the middle is always last)."""
    return arrange(prefix, [], suffix, sentinels, spm)
