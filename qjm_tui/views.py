"""What users read, shared by the command line and the app: durations, relative times, state
glyphs, progress bars and histogram bars.

Everything here is plain text from plain values (no Rich, no Textual, no store access), so the
CLI and the app say the same thing the same way, and tests can check it without a terminal.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass

#: job statuses in the order a legend lists them
JOB_STATUS_ORDER = ("done", "running", "queued", "submitting", "pending", "failed", "cancelled")

#: one glyph per job status, distinct without colour; and their ASCII fallbacks
JOB_GLYPHS = {"pending": "○", "submitting": "◌", "queued": "◌", "running": "◐", "done": "●",
              "failed": "✗", "cancelled": "⊘"}
JOB_GLYPHS_ASCII = {"pending": ".", "submitting": "q", "queued": "q", "running": "r", "done": "#",
                    "failed": "x", "cancelled": "-"}

#: one glyph per job-set state
SET_GLYPHS = {"running": "◐", "done": "●", "partial": "◑", "failed": "✗", "cancelled": "⊘",
              "interrupted": "‼"}
SET_GLYPHS_ASCII = {"running": "r", "done": "#", "partial": "p", "failed": "x", "cancelled": "-",
                    "interrupted": "!"}

_FULL, _EIGHTHS = "█", " ▏▎▍▌▋▊▉"


def unicode_ok(stream: object = None) -> bool:
    """Whether ``stream`` (stdout by default) can show block and circle glyphs."""
    encoding = getattr(stream if stream is not None else sys.stdout, "encoding", None) or ""
    return encoding.lower().replace("-", "").startswith("utf")


def duration(seconds: float | None) -> str:
    """A short duration: ``4.1s``, ``3m05s``, ``2h07m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def ago(timestamp: float, now: float) -> str:
    """How long before ``now`` a moment was, as a person says it: ``just now``, ``3 min ago``,
    ``5 h ago``, ``2 d ago``."""
    seconds = max(0.0, now - timestamp)
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} d ago"


def iso(timestamp: float | None) -> str | None:
    """A timestamp as local ISO 8601 text to the second (None stays None)."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc).astimezone().isoformat(
        timespec="seconds")


def clock_time(timestamp: float | None) -> str:
    """A timestamp as local ``HH:MM:SS`` (``-`` when unknown)."""
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%H:%M:%S")


def bar(fraction: float, width: int, unicode: bool = True) -> str:
    """A horizontal bar ``width`` cells long at most, in eighths of a cell where the terminal
    can show them; empty cells are spaces (the caller pads or draws a track)."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = int(round(fraction * width * 8))
    if not unicode:
        return "#" * (eighths // 8)
    return _FULL * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")


def progress_bar(fraction: float, width: int, unicode: bool = True) -> str:
    """A progress bar exactly ``width`` cells wide: filled part, then a light track."""
    filled = bar(fraction, width, unicode)
    return filled + ("░" if unicode else "-") * (width - len(filled))


@dataclass(frozen=True)
class HistogramRow:
    """One bar of a histogram: an outcome (or ``other (N)``), its count and probability."""

    label: str
    count: int
    probability: float
    folded: int = 0  #: how many outcomes an "other" row stands for (0 for a real outcome)


def histogram_rows(counts: dict[str, int], max_rows: int = 16) -> list[HistogramRow]:
    """Counts as rows, most frequent first (ties by outcome); beyond ``max_rows`` the rest is
    folded into one ``other`` row, so the rows always add up to every shot."""
    total = sum(counts.values())
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ordered) > max_rows:
        keep, rest = ordered[:max(max_rows - 1, 1)], ordered[max(max_rows - 1, 1):]
    else:
        keep, rest = ordered, []
    rows = [HistogramRow(k, c, c / total if total else 0.0) for k, c in keep]
    if rest:
        folded = sum(c for _, c in rest)
        rows.append(HistogramRow(f"other ({len(rest)})", folded, folded / total if total else 0.0,
                                 folded=len(rest)))
    return rows


def histogram_lines(counts: dict[str, int], width: int = 40, max_rows: int = 16,
                    unicode: bool | None = None) -> list[str]:
    """Counts as text bars, one line each: ``outcome  count  percent  bar``.

    Bars are scaled to the largest row, so the most frequent outcome fills ``width``.
    """
    if not counts:
        return ["  (no counts)"]
    unicode = unicode_ok() if unicode is None else unicode
    rows = histogram_rows(counts, max_rows)
    top = max(r.count for r in rows)
    label_width = max(len(r.label) for r in rows)
    count_width = len(str(top))
    return [
        f"  {r.label.rjust(label_width)} {str(r.count).rjust(count_width)} "
        f"{r.probability * 100:5.1f}% {bar(r.count / top if top else 0, width, unicode)}".rstrip()
        for r in rows
    ]
