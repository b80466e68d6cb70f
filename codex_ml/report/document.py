"""The report as a list of blocks, rendered twice: Markdown (figures as linked SVG files) and one
self-contained HTML page (figures inlined; a Content-Security-Policy that forbids every external
resource, so a stray link to one shows up as a console error instead of a silent network fetch)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape


@dataclass(frozen=True)
class Code:
    """Inline code (paths, hashes, commands) inside a paragraph or a table cell."""

    text: str


@dataclass(frozen=True)
class Link:
    """A link to a file beside the report (a card), relative to the report's folder: never fetched."""

    text: str
    href: str


Inline = str | Code | Link


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    parts: Sequence[Inline]


@dataclass(frozen=True)
class Note:
    """A statement about something the report does not show (a missing input), never a number."""

    text: str


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Inline]]
    align_right: Sequence[bool] = ()  # per column; numbers read best right-aligned


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under figures/
    svg: str
    caption: str


@dataclass(frozen=True)
class CodeBlock:
    text: str


Block = Heading | Para | Note | Table | Figure | CodeBlock

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md_text(s: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", s)


def md_code(s: str) -> str:
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def _md_inline(part: Inline) -> str:
    if isinstance(part, Link):
        return f"[{md_code(part.text)}]({part.href})"
    return md_code(part.text) if isinstance(part, Code) else md_text(part)


def _html_inline(part: Inline) -> str:
    if isinstance(part, Link):
        return f'<a href="{escape(part.href)}"><code>{escape(part.text)}</code></a>'
    return f"<code>{escape(part.text)}</code>" if isinstance(part, Code) else escape(part)


def to_markdown(blocks: Sequence[Block], figures_dir: str = "figures") -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {md_text(b.text)}")
        elif isinstance(b, Para):
            out.append("".join(_md_inline(p) for p in b.parts))
        elif isinstance(b, Note):
            out.append(f"> {md_text(b.text)}")
        elif isinstance(b, Table):
            out.append("| " + " | ".join(md_text(h) for h in b.header) + " |")
            aligns = [(b.align_right[i] if i < len(b.align_right) else False) for i in range(len(b.header))]
            out.append("|" + "|".join(" ---: " if a else " --- " for a in aligns) + "|")
            for row in b.rows:
                # GitHub tables split cells at every "|", even inside code spans: escape those too.
                out.append("| " + " | ".join(_md_inline(c).replace("\n", " ").replace("\\|", "|")
                                             .replace("|", "\\|") for c in row) + " |")
        elif isinstance(b, Figure):
            out.append(f"![{md_text(b.caption)}]({figures_dir}/{b.name}.svg)")
        elif isinstance(b, CodeBlock):
            fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", b.text)), default=0) + 1)
            out.append(f"{fence}\n{b.text.rstrip()}\n{fence}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 9px; vertical-align: top; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 13px; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; white-space: pre-wrap; }
p.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .5em .8em; }
figure { margin: 1em 0; }
figcaption { font-size: 13px; color: #555; }
svg { max-width: 100%; height: auto; }
"""

# Nothing may load from anywhere: styles are inline, figures are inline SVG, there are no scripts.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def to_html(blocks: Sequence[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append("<p>" + "".join(_html_inline(p) for p in b.parts) + "</p>")
        elif isinstance(b, Note):
            out.append(f'<p class="note">{escape(b.text)}</p>')
        elif isinstance(b, Table):
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in b.header) + "</tr>")
            for row in b.rows:
                cells = []
                for i, c in enumerate(row):
                    cls = ' class="num"' if i < len(b.align_right) and b.align_right[i] else ""
                    cells.append(f"<td{cls}>{_html_inline(c)}</td>")
                out.append("<tr>" + "".join(cells) + "</tr>")
            out.append("</table>")
        elif isinstance(b, Figure):
            out.append(f'<figure id="fig-{escape(b.name)}">')
            out.append(b.svg.rstrip())
            out.append(f"<figcaption>{escape(b.caption)}</figcaption>")
            out.append("</figure>")
        elif isinstance(b, CodeBlock):
            out.append(f"<pre><code>{escape(b.text.rstrip())}</code></pre>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


@dataclass
class Report:
    """The page being built: its blocks in order."""

    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]
