"""The title bar and the key bars' layout: whole entries at every width, the store's path
giving way first (from its start), never a line longer than the bar."""

from __future__ import annotations

from qjm_tui import views
from qjm_tui.tui.bars import DOT, Entry, TitleBar, fit_entries

COUNTS = [Entry("12 running", "◐12"), Entry("10 interrupted", "‼10"), Entry("13 failed", "✗13"),
          Entry("89 done", "●89")]


def test_the_title_ends_on_whole_entries_at_every_width() -> None:
    for label in ("~/.local/share/qjm/qjm.sqlite", "/srv/量子/測定/qjm.sqlite", ""):
        bar = TitleBar(label)
        bar.counts = COUNTS
        for width in range(0, 201):
            line = bar.line(width).plain
            if width >= 20:
                assert views.cell_width(line) <= width, (label, width, line)
            right = line.split("  ")[-1].strip()
            if right and right != "qjm":
                entries = right.split(DOT.strip())
                wanted = {e.text for e in COUNTS} | {e.short for e in COUNTS}
                assert all(e.strip() in wanted for e in entries), (width, line)
            if width >= 80:
                assert all(e.text in line or e.short in line for e in COUNTS), (width, line)
            if label and label not in line and "…" in line:
                assert label.endswith(line.split("…")[1].split("  ")[0]), "the path's end is kept"


def test_fit_entries_keeps_the_tail_and_skips_what_does_not_fit() -> None:
    body = [Entry("x Cancel"), Entry("r Retry the failed jobs of the set"), Entry("e Export")]
    tail = [Entry("? Help"), Entry("q Quit")]
    _, kept, last, _ = fit_entries(40, [], body, "  ", tail)
    assert [e.text for e in last] == ["? Help", "q Quit"]
    assert [e.text for e in kept] == ["x Cancel", "e Export"], "a long entry is left out whole"
