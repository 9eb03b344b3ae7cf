"""The report as a list of blocks, written out as Markdown or as self-contained HTML.

Each section of the benchmark report is built once as blocks (heading, paragraph, table,
figure, bullet list, link); :func:`to_markdown` and :func:`to_html` then write the same
content in both formats, so the two documents cannot drift apart.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from kuairec.display import html as H
from kuairec.display.figure import Figure

MISSING = "n/a"
_NUMBER = re.compile(r"-?\d+(\.\d+)?( \[| \(|$)")


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str
    note: bool = False


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Bullets:
    items: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Link:
    label: str
    href: str


Block = Heading | Para | Table | Figure | Bullets | Link


# ---------------------------------------------------------------- number formatting


def num(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is missing, not a number, or NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals; integers as integers; anything else ``n/a``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    x = num(value)
    return MISSING if x is None else f"{x:.{digits}f}"


def fmt_column(values: list[Any]) -> list[str]:
    """One column of numbers: 4 decimals, or 1 when any value reaches 100 (counts)."""
    nums = [num(v) for v in values]
    digits = 1 if any(x is not None and abs(x) >= 100 for x in nums) else 4
    return [fmt(v, digits) for v in nums]


def ci_pair(ci: Any) -> tuple[float, float] | None:
    """``[lo, hi]`` as two finite floats, or None when absent or malformed."""
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return None
    lo, hi = num(ci[0]), num(ci[1])
    return None if lo is None or hi is None else (lo, hi)


def fmt_ci(ci: Any, digits: int = 4) -> str:
    """``[lo, hi]`` formatted as ``"[0.1000, 0.1200]"``, or empty when absent."""
    pair = ci_pair(ci)
    return "" if pair is None else f"[{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def fmt_with_ci(value: Any, ci: Any) -> str:
    text = fmt(value)
    bracket = fmt_ci(ci)
    return f"{text} {bracket}" if bracket and text != MISSING else text


# ---------------------------------------------------------------- writers


def _md_cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _numeric(cell: str) -> bool:
    return cell in ("", MISSING) or bool(_NUMBER.match(cell))


def _md_table(table: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.header) + " |"]
    columns = range(len(table.header))
    right = [j > 0 and all(_numeric(row[j]) for row in table.rows) for j in columns]
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(blocks: list[Block]) -> str:
    """Markdown text; figures reference ``plots/<name>.png``."""
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            parts.append(f"*{b.text}*" if b.note else b.text)
        elif isinstance(b, Table):
            parts.append(_md_table(b))
        elif isinstance(b, Figure):
            alt = b.name.replace("_", " ")
            parts.append(f"![{alt}](plots/{b.file_name})\n\n*{b.caption}*")
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Link):
            href = _safe_href(b.href)
            parts.append(f"[{b.label}]({href})" if href else f"{b.label}: `{b.href}`")
    return "\n\n".join(parts) + "\n"


def _safe_href(href: str) -> str | None:
    """Relative paths and http(s) links only (no ``javascript:`` or ``data:`` URLs)."""
    scheme, sep, _ = href.partition(":")
    if sep and "/" not in scheme and scheme.lower() not in ("http", "https"):
        return None
    return href


def to_html(blocks: list[Block]) -> str:
    """The HTML body; figures embedded as base64 PNGs."""
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{H.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            cls = ' class="note"' if b.note else ""
            parts.append(f"<p{cls}>{H.escape(b.text)}</p>")
        elif isinstance(b, Table):
            parts.append(H.table_html(b.header, b.rows))
        elif isinstance(b, Figure):
            parts.append(H.figure_html(b.png, b.caption))
        elif isinstance(b, Bullets):
            items = "".join(f"<li>{H.escape(item)}</li>" for item in b.items)
            parts.append(f"<ul>{items}</ul>")
        elif isinstance(b, Link):
            href = _safe_href(b.href)
            if href is None:
                parts.append(f"<p>{H.escape(b.label)}: {H.escape(b.href)}</p>")
            else:
                parts.append(f'<p><a href="{H.escape(href)}">{H.escape(b.label)}</a></p>')
    return "\n".join(parts)
