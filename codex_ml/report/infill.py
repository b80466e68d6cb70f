"""The report's infilling section, from what the eval stage wrote: `infill` in each held-out split of
metrics/eval.json (line and block spans masked in held-out documents; docs/fim.md says what each number
means) and `humaneval_infill` when eval.infill.humaneval ran. It shows the numbers the eval stage wrote
and nothing else; a run without them says so in a sentence.
"""

from __future__ import annotations

from typing import Any

from codex_ml.handoffs import infill_text
from codex_ml.paths import HELD_OUT
from codex_ml.report.document import Code, Heading, Note, Para, Report, Table
from codex_ml.report.format import num, with_ci
from codex_ml.report.inputs import Paths, get

NUMBERS = (("exact_match", "exact match", 3), ("edit_similarity", "edit similarity", 3),
           ("middle_bpb_l2r", "middle bits per byte, left to right", 4),
           ("middle_bpb_fim", "middle bits per byte, with the suffix", 4),
           ("suffix_gain_bpb", "what the suffix saves (bits per byte)", 4))


def infill_section(r: Report, paths: Paths, ev: Any) -> None:
    r.add(Heading(2, "Infilling"))
    columns = [(s, kind) for s in HELD_OUT for kind in ("line", "block")
               if isinstance(get(ev, s, "infill", kind), dict)]
    if not columns:
        r.add(Note("Infilling was not measured: metrics/eval.json holds no infill numbers (eval.infill.line "
                   "and eval.infill.block set to zero, or no eval run)."))
        return
    modes = {get(ev, s, "infill", kind, "mode") for s, kind in columns}
    how = ("prompted with the prefix and the suffix in the model's FIM sentinels (prefix-suffix-middle)"
           if modes == {"fim"} else "written left to right from the prefix: the model's tokenizer has no "
           "FIM sentinels")
    r.add(Para(["Lines and blocks of 2-8 lines masked in held-out documents; the model's middle is "
                f"{how}. Bits per byte score the true middle with and without the suffix on the same "
                "tokens, paired; intervals are 95% bootstrap intervals over documents. Per span: ",
                Code(str(paths.eval_dir / "test_infill.ndjson")), "."]))
    rows = []
    for key, label, digits in NUMBERS:
        cells = [with_ci(get(ev, s, "infill", kind, key), get(ev, s, "infill", kind, f"{key}_ci"), digits)
                 for s, kind in columns]
        if any(c != "not measured" for c in cells):
            rows.append([label, *cells])
    rows.append(["spans (documents)", *(f"{num(get(ev, s, 'infill', kind, 'samples'))} "
                                        f"({num(get(ev, s, 'infill', kind, 'documents'))})"
                                        for s, kind in columns)])
    r.add(Table(["metric [95% interval]", *(f"{s} {kind}" for s, kind in columns)], rows,
                [False] + [True] * len(columns)))
    he = get(ev, "humaneval_infill")
    if isinstance(he, dict):
        passed = with_ci(he.get("pass@1"), he.get("pass@1_ci"))
        r.add(Para([f"HumanEval single-line infilling: pass@1 {passed} "
                    f"over {num(he.get('tasks'))} tasks ({num(he.get('problems'))} problems, interval over "
                    f"problems), exact match {num(he.get('exact_match'), 3)}."]))


def infill_summary(ev: Any) -> list[str]:
    """The summary's infilling lines: per held-out split, the line spans' numbers."""
    lines = []
    for split in HELD_OUT:
        m = get(ev, split, "infill", "line")
        if not isinstance(m, dict):
            continue
        lines.append(f"{split:<6}line: {infill_text(m)}")
    return lines
