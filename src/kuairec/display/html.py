"""Self-contained HTML pages: every figure embedded as a base64 PNG, no external assets."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from kuairec import atomic

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1,h2,h3{color:#113}
table{border-collapse:collapse;margin:1em 0;font-size:.92em;display:block;overflow-x:auto;
max-width:100%}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f0f2f6} td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-style:italic;color:#444;margin-top:.3em}
.note{color:#555;font-size:.9em} code{background:#f4f4f4;padding:0 .2em}
"""


def escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def figure_html(png: bytes, caption: str, alt: str | None = None) -> str:
    """A <figure> with the embedded image and a caption (the figure's takeaway)."""
    return (
        f"<figure>{img_tag(png, alt or caption)}<figcaption>{escape(caption)}</figcaption></figure>"
    )


def table_html(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def write_page(path: Path | str, title: str, body: str) -> Path:
    """Write a complete self-contained page atomically."""
    return atomic.write_text(path, page(title, body))


def use_agg() -> None:
    """Select matplotlib's non-interactive backend (no display here or in CI), unless a
    notebook's inline backend is active: figures are rendered with savefig either way,
    and switching would silently stop the notebook's own plots from showing."""
    import matplotlib

    backend = str(matplotlib.get_backend()).lower()
    if "inline" in backend or backend == "agg":
        return
    matplotlib.use("Agg", force=True)
