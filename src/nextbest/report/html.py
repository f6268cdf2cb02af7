"""Building blocks of the self-contained HTML reports: reading a JSON input, escaping, tables, figures embedded
as base64 PNG, notes, the shared inline CSS and the page with its navigation. Reads the JSON inputs it is given
and the PNG files it embeds; writes only the figures its draw jobs write.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from nextbest.errors import NextbestError

T = TypeVar("T")

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{font-size:1.7em;margin-bottom:4px}h2{border-bottom:2px solid #e3e6ea;padding-bottom:4px;margin-top:40px}
h3{margin-top:24px}p{line-height:1.5}.sub{color:#666;margin-top:0}
nav{font-size:.92em;margin:12px 0 8px}nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}
table{border-collapse:collapse;margin:12px 0;font-size:.92em}
th,td{border:1px solid #dde1e6;padding:5px 9px;text-align:left;vertical-align:top}
th{background:#eef1f5}tbody tr:nth-child(even){background:#fafbfc}
.ci{color:#666;font-size:.88em;white-space:nowrap}
.met{color:#fff;background:#2c8a3b;padding:1px 7px;border-radius:9px;white-space:nowrap}
.unmet{color:#fff;background:#c62828;padding:1px 7px;border-radius:9px;white-space:nowrap}
.headline{font-size:1.12em;font-weight:600}
.warning{background:#fff4e5;border-left:4px solid #e07b39;padding:8px 12px}
.note{background:#eef4fb;border-left:4px solid #1f5fa8;padding:8px 12px}
figure{margin:16px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.88em}code{background:#f0f2f5;padding:0 3px}
"""


class Raw(str):
    """HTML that is already safe (not escaped again by the helpers)."""


def escape(value: object) -> str:
    """`value` as HTML text; Raw passes through unchanged."""
    return value if isinstance(value, Raw) else html.escape(str(value))


def read_json(path: Path, hint: str) -> dict:
    """The JSON object in `path`; missing, unreadable or not an object is a NextbestError naming it (+ `hint`)."""
    if not path.is_file():
        raise NextbestError(f"{path}: not found; {hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise NextbestError(f"{path}: cannot be read ({error})") from error
    except json.JSONDecodeError as error:
        raise NextbestError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from error
    if not isinstance(data, dict):
        raise NextbestError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def num(value: object) -> float | None:
    """`value` as a float when it is a finite number, else None."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def guard(source: Path, key: str, work: Callable[[], T]) -> T:
    """Run `work`; a malformed input section becomes a NextbestError naming the file and key."""
    try:
        return work()
    except NextbestError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        where = f"{source}" + (f" ({key})" if key else "")
        raise NextbestError(f"{where}: malformed input ({type(error).__name__}: {error})") from error


def table(headers: list[str], rows: list[list[object]], css: str = "") -> Raw:
    """An HTML table; cells are escaped unless Raw."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Raw(f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def ci_bounds(ci: list | None) -> tuple[object, object]:
    """The (low, high) of an interval list, None where missing."""
    low, high = (list(ci or [None, None]) + [None, None])[:2]
    return low, high


def with_ci(value: float | None, ci: list | None, fmt: Callable) -> Raw:
    """`value` followed by its interval in small grey brackets."""
    low, high = ci_bounds(ci)
    band = (
        f'<span class="ci">[{escape(fmt(low))}, {escape(fmt(high))}]</span>'
        if low is not None or high is not None
        else ""
    )
    return Raw(f"{escape(fmt(value))} {band}".strip())


def status(met: bool, yes: str = "met", no: str = "not met") -> Raw:
    """A green or red badge."""
    return Raw(f'<span class="met">{escape(yes)}</span>' if met else f'<span class="unmet">{escape(no)}</span>')


@dataclass
class FigureRef:
    """A drawn figure and the JSON (file and key) its data came from."""

    name: str
    title: str
    png: Path
    source: Path
    key: str
    more_sources: tuple[Path, ...] = ()

    def as_json(self) -> dict:
        data = {
            "name": self.name,
            "title": self.title,
            "png": str(self.png),
            "source": str(self.source),
            "key": self.key,
        }
        if self.more_sources:
            data["sources"] = [str(path) for path in (self.source, *self.more_sources)]
        return data


def figure(ref: FigureRef | None, caption: str = "") -> str:
    """The figure embedded as a base64 PNG, captioned with the JSON it was drawn from; '' for None."""
    if ref is None:
        return ""
    data = base64.b64encode(ref.png.read_bytes()).decode("ascii")
    names = ", ".join(path.name for path in (ref.source, *ref.more_sources))
    source = names + (f" → {ref.key}" if ref.key else "")
    text = f"{escape(caption)} " if caption else ""
    return (
        f'<figure><img alt="{escape(ref.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{text}Data: <code>{escape(source)}</code>.</figcaption></figure>"
    )


def draw_all(
    jobs: list[tuple[str, str, Path, str, Callable[[Path], Path]]],
    folder: Path,
    more_sources: dict[str, tuple[Path, ...]] | None = None,
) -> dict[str, FigureRef]:
    """Run each (name, title, source, key, draw) job into `folder/<name>.png`; returns the figures by name.
    `more_sources` names further JSON files a figure was drawn from, by figure name."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = {}
    for name, title, source, key, draw in jobs:
        png = guard(source, key, lambda d=draw, n=name: d(folder / f"{n}.png"))
        drawn[name] = FigureRef(name, title, png, source, key, (more_sources or {}).get(name, ()))
    return drawn


def note(text: str, kind: str = "note") -> str:
    """A highlighted paragraph (kind 'note' or 'warning')."""
    return f'<p class="{kind}">{escape(text)}</p>'


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def bullets(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(t)}</li>" for t in items) + "</ul>"


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: title, subtitle (with the generation time), a nav, then each (anchor, title, html)."""
    nav = "".join(f'<a href="#{anchor}">{escape(name)}</a>' for anchor, name, _ in sections)
    body = "\n".join(
        f'<section id="{anchor}"><h2>{escape(name)}</h2>\n{content}</section>' for anchor, name, content in sections
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>nextbest {escape(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="sub">{escape(subtitle)} · generated {escape(stamp)}</p><nav>{nav}</nav>\n'
        + body
        + "</main></body></html>\n"
    )


__all__ = [
    "CSS",
    "FigureRef",
    "Raw",
    "bullets",
    "ci_bounds",
    "draw_all",
    "escape",
    "figure",
    "guard",
    "note",
    "num",
    "page",
    "paragraph",
    "read_json",
    "status",
    "table",
    "with_ci",
]
