"""The app's title bar and key bar: one line each, always ending on a whole entry.

Both lay out their entries for the width they have and leave out whole entries (least wanted
first) rather than cut one; each repaints only when its text changes, so a live store does not
redraw them a few times a second for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual.screen import Screen
from textual.widget import Widget

from qjm_tui import views

#: a separator between two counts of the title bar
DOT = " · "


@dataclass(frozen=True)
class Entry:
    """One entry of a bar: its words, the short form used when the words do not fit, a style."""

    text: str
    short: str = ""
    style: str = ""


def fit_entries(width: int, lead: Sequence[Entry], entries: Sequence[Entry], sep: str,
                tail: Sequence[Entry] = ()) -> tuple[list[Entry], list[Entry], list[Entry], bool]:
    """Which entries fit in ``width`` cells: every ``lead`` and ``tail`` entry, then as many of
    ``entries`` (in order) as fit, each whole, in their words or else all in their short form.
    Returns (lead, entries, tail, short)."""

    def cells(items: Sequence[Entry], short: bool) -> int:
        texts = [e.short if short and e.short else e.text for e in items]
        return sum(views.cell_width(t) for t in texts) + views.cell_width(sep) * max(len(texts) - 1, 0)

    for short in (False, True):
        fixed = cells([*lead, *tail], short) + (views.cell_width(sep) if tail else 0)
        if fixed + (views.cell_width(sep) + cells(entries, short) if entries else 0) <= width:
            return list(lead), list(entries), list(tail), short
    kept: list[Entry] = []
    for entry in entries:  # an entry too long for what is left is skipped; a shorter one may fit
        if fixed + views.cell_width(sep) + cells([*kept, entry], True) <= width:
            kept.append(entry)
    return list(lead), kept, list(tail), True


class TitleBar(Widget):
    """``qjm``, the store, new failures not yet looked at, and how many sets are in each state,
    laid out to end on a whole entry at any width (the store's path is what gives way first)."""

    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    def __init__(self, store_label: str, *, title: str = "qjm", id: str | None = None) -> None:
        """``title`` leads the bar (``qjm (read-only)`` for an app that only looks: first, so a
        long store path cannot hide it)."""
        super().__init__(id=id)
        self.store_label = store_label
        self.title = title
        self.counts: list[Entry] = []
        self.alert: Entry | None = None
        self._text = Text()

    def show(self, counts: list[Entry], alert: Entry | None = None) -> None:
        """Show these per-state counts (most wanted first) and the alert (new failures)."""
        if counts != self.counts or alert != self.alert:
            self.counts, self.alert = counts, alert
            self._update()

    def on_resize(self) -> None:
        self._update()

    def _update(self) -> None:
        text = self.line(self.size.width)
        if text != self._text:
            self._text = text
            self.refresh()

    def line(self, width: int) -> Text:
        """The bar's text for ``width`` cells."""
        entries = ([self.alert] if self.alert else []) + self.counts
        lead, kept, _, short = fit_entries(width - 2, [Entry(self.title, style="bold")], entries, DOT)
        shown = [e.short if short and e.short else e.text for e in kept]
        right = views.cell_width(DOT.join(shown))
        # " qjm  <label>   <counts> ": the label gets what is left, if that is worth showing
        room = width - 1 - views.cell_width(self.title) - 2 - 3 - right - 1
        label = self.store_label
        if views.cell_width(label) > room:  # a path: its end is what tells it apart
            label = ""
            if room >= 16:
                label = "…" + self.store_label[-(room - 1):]
                while views.cell_width(label) > room:  # wide characters
                    label = "…" + label[2:]
        text = Text(" ")
        text.append(self.title, style="bold")
        if label:
            text.append("  " + label, style="dim")
        text.append(" " * max(width - 1 - text.cell_len - right - 1, 1))
        for n, (entry, words) in enumerate(zip(kept, shown, strict=True)):
            if n:
                text.append(DOT, style="dim")
            text.append(words, style=entry.style)
        return text

    def render(self) -> RenderResult:
        return self._text


class KeyBar(Widget):
    """The keys that work where the focus is, on this screen: ``key what`` entries, whole,
    as many as fit, always ending with help and quit (or, on a dialog, its way back)."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    KeyBar > .key-bar--key {
        color: $accent;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES = {"key-bar--key"}

    #: binding ids shown last, always (what a newcomer needs wherever they are)
    LAST = ("app.help", "app.quit")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Text()

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self.update_keys)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        if self.is_attached and screen is self.screen:
            self.update_keys()

    def on_resize(self) -> None:
        self.update_keys()

    def entries(self) -> list[tuple[str, str, bool]]:
        """Every entry shown here, as (keys as displayed, what they do, shown last), in order;
        the keys of one binding group (the arrows) share an entry."""
        seen: set[str] = set()
        first: list[tuple[str, str, bool]] = []
        last: list[tuple[int, tuple[str, str, bool]]] = []
        groups: dict[str, int] = {}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not active.enabled or binding.action in seen:
                continue
            seen.add(binding.action)
            shown = binding.key_display or self.app.get_key_display(binding)
            group = binding.group
            if group is not None and group.description in groups:
                n = groups[group.description]
                keys, words, _ = first[n]
                first[n] = (keys + ("" if group.compact else "/") + shown, words, False)
            elif group is not None:
                groups[group.description] = len(first)
                first.append((shown, group.description, False))
            elif binding.id in self.LAST:
                last.append((self.LAST.index(binding.id), (shown, binding.description, True)))
            else:
                first.append((shown, binding.description, False))
        return first + [entry for _, entry in sorted(last)]

    def update_keys(self) -> None:
        """Lay the keys out again (the focus, the bindings or the width changed)."""
        if not self.is_attached:
            return
        entries = self.entries()
        tail = [Entry(f"{keys} {words}") for keys, words, at_end in entries if at_end]
        body = [Entry(f"{keys} {words}") for keys, words, at_end in entries if not at_end]
        _, kept, tail, _ = fit_entries(self.size.width - 1, [], body, "  ", tail)
        key_style = self.get_component_rich_style("key-bar--key")
        text = Text(" ")
        for n, entry in enumerate([*kept, *tail]):
            if n:
                text.append("  ")
            key, _, words = entry.text.partition(" ")
            text.append(key, style=key_style)
            text.append(" " + words)
        if text != self._text:
            self._text = text
            self.refresh()

    def render(self) -> RenderResult:
        return self._text
