"""Everything the app does to job sets, each on a key: new, cancel, retry, resume, rename, tags,
export, copy id, delete, save the histogram, and quitting while this app runs job sets.

:class:`JobSetActions` is a mixin the app class inherits first (``class QjmApp(JobSetActions,
App)``). It relies on two things of the app: ``manager`` (the user-facing
:class:`qjm_tui.compose.JobManager`) and ``selected_summary()`` (the set under the browser's
cursor); and, for the histogram, an optional ``histogram_counts()`` returning ``(title,
counts)`` of the histogram on screen. Every action goes through the same core calls as the CLI
command of the same name, in a thread worker; its outcome, good or bad, becomes a notification
and the app keeps running.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rich.console import Console
from rich.text import Text
from textual.app import SystemCommand
from textual.binding import Binding, BindingType

from qjm_tui.core.files import write_file
from qjm_tui.core.status import JOB_FINAL, SET_FINAL, JobStatus, SetState
from qjm_tui.core.text import error_text
from qjm_tui.exporting import export
from qjm_tui.launch import launch
from qjm_tui.tui.dialogs import ConfirmDialog, ExportDialog, QuitDialog, TextPrompt
from qjm_tui.tui.forms import NewJobSetForm
from qjm_tui.tui.keys import checked_keymap
from qjm_tui.views import histogram_lines, short_id

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

    from qjm_tui.compose import JobManager
    from qjm_tui.core.jobset import ManagedJobSet
    from qjm_tui.core.store import JobSetSummary


class ActionHost(Protocol):
    """What the app that mixes in :class:`JobSetActions` supplies to its actions."""

    def selected_summary(self) -> JobSetSummary | None:
        """The set selected in the browser, if any."""
        ...

    def follow_set(self, set_id: str) -> None:
        """Select a set as soon as the browser lists it (a set just started here)."""
        ...

    def histogram_counts(self) -> tuple[str, dict[str, int]] | None:
        """What the histogram pane shows, as (title, counts), or None when it shows none."""
        ...


if TYPE_CHECKING:
    class _Base(App[int], ActionHost):
        """The mixin is checked as part of an app that supplies :class:`ActionHost`."""
else:
    _Base = object

log = logging.getLogger("qjm_tui.tui")

#: what a read-only app says when an action that changes something is reached anyway
READ_ONLY_REFUSAL = "this app is read-only (started with --read-only): it changes nothing"

#: Textual's palette commands the app leaves out: its own help, quit and look say more
TEXTUAL_COMMANDS_LEFT_OUT = frozenset({"Theme", "Keys", "Quit"})

#: the keys of the job-set actions; each id can be remapped in the config file's [keys] table
SET_BINDINGS: list[Binding] = [
    Binding("n", "new_job_set", "New", id="set.new", tooltip="start a job set from circuit files"),
    Binding("x", "cancel_job_set", "Cancel", id="set.cancel", tooltip="cancel the selected set"),
    Binding("r", "retry_job_set", "Retry", id="set.retry",
            tooltip="run the failed and cancelled jobs again"),
    Binding("R", "resume_job_set", "Resume", id="set.resume", tooltip="finish an interrupted set"),
    Binding("e", "export_job_set", "Export", id="set.export",
            tooltip="write the results to a JSON, CSV or Qiskit Result file"),
    Binding("E", "rename_job_set", "Rename", id="set.rename", tooltip="rename the set"),
    Binding("t", "tag_job_set", "Tags", id="set.tags", tooltip="add or remove tags"),
    Binding("y", "copy_job_set_id", "Copy id", id="set.copy_id",
            tooltip="copy the set's id to the clipboard (OSC 52, works over SSH)"),
    Binding("D", "delete_job_set", "Delete", id="set.delete",
            tooltip="delete a finished set from the store"),
    Binding("H", "save_histogram", "Save SVG", id="set.save_histogram",
            tooltip="save the histogram on screen as an SVG picture"),
]


def changes_things(action: Callable[..., None]) -> Callable[..., None]:
    """Mark an action that changes something (the store, a file, a running set). A read-only
    app offers none of them (no key, footer entry, help line or palette entry) and refuses each
    one that is reached another way, saying why."""

    @functools.wraps(action)
    def guarded(self: JobSetActions, *args: Any, **kwargs: Any) -> None:
        if self.read_only:
            self.notify(READ_ONLY_REFUSAL, title="read-only", severity="warning")
            return None
        return action(self, *args, **kwargs)

    guarded.changes_things = True  # type: ignore[attr-defined]
    return guarded


def parse_tag_edit(text: str) -> tuple[list[str] | None, list[str], list[str]]:
    """The tags form's line as (replacement, additions, removals); (None, [], []) changes
    nothing.

    ``+a -b`` adds ``a`` and removes ``b``; a plain list (``a, b`` or ``a b``) replaces the
    tags; ``-*`` removes them all (``-* +a`` leaves only ``a``). An empty line changes nothing:
    Enter on an empty field must not wipe every tag.
    """
    words = [w for w in text.replace(",", " ").split() if w]
    if any(w[0] in "+-" for w in words):
        plain = [w for w in words if w[0] not in "+-"]
        adds = [w[1:] for w in words if w[0] == "+" and len(w) > 1] + plain
        removes = [w[1:] for w in words if w[0] == "-" and len(w) > 1]
        if "*" in removes:
            return adds, [], []
        return None, adds, removes
    return (words or None), [], []


def histogram_svg(title: str, counts: dict[str, int], width: int = 80) -> str:
    """The histogram drawn as the app and the CLI draw it (text bars), as an SVG picture."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor")
    console.print(Text(title, style="bold"))
    for line in histogram_lines(counts, width=max(10, width - 40)):
        console.print(Text(line, style="green"))
    return console.export_svg(title=title)


def set_label(summary: JobSetSummary) -> str:
    """A set as messages name it: its name and short id, or its id when it has no own name."""
    return f"{summary.name} ({short_id(summary.id)})" if summary.name != summary.id else summary.id


def resume_command(set_id: str, store: Path) -> Callable[[int], list[str]]:
    """The arguments of a background ``qjm resume`` of one set in ``store`` that reports to
    its parent on the descriptor it is given (as ``qjm resume --detach`` starts it)."""
    return lambda fd: ["resume", set_id, "--store", str(store), "--report-fd", str(fd)]


def cancel_dialog(summary: JobSetSummary) -> ConfirmDialog:
    """The question cancelling asks: how many jobs it cancels, and that finished ones stay."""
    open_jobs = sum(n for status, n in summary.counts.items() if status not in JOB_FINAL)
    done = summary.counts.get(JobStatus.DONE, 0)
    body = (f"{open_jobs} of {summary.total_jobs} jobs will be cancelled. The {done} finished jobs "
            "keep their results; `r` (retry) runs the cancelled ones later.")
    return ConfirmDialog(f"Cancel {set_label(summary)}?", body, "Cancel jobs")


class JobSetActions(_Base):
    """The job-set actions of the app: key bindings (with ids) and their ``action_*`` methods.
    The app that mixes this in supplies :class:`ActionHost`'s methods."""

    BINDINGS: ClassVar[list[BindingType]] = [*SET_BINDINGS]
    manager: JobManager
    #: True for an app that only looks: every action marked ``changes_things`` is off
    read_only: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Textual merges BINDINGS only from DOMNode classes, and this mixin is not one, so the
        # app class that mixes it in gets these bindings after its own (so the footer shows the
        # app's quit and help keys first).
        if JobSetActions in cls.__bases__:
            cls.BINDINGS = [*cls.__dict__.get("BINDINGS", []), *SET_BINDINGS]
        super().__init_subclass__(**kwargs)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette's entries: Textual's own that qjm has no better word for (a
        screenshot, maximizing a pane; not its themes, its key list or its quit, which the app's
        help and quit say better), then every job-set action by name (in a read-only app, only
        those that change nothing, and no screenshot file)."""
        for command in super().get_system_commands(screen):
            if command.title in TEXTUAL_COMMANDS_LEFT_OUT:
                continue
            if not (self.read_only and command.title == "Screenshot"):
                yield command
        for binding in SET_BINDINGS:
            if self.offers(binding.action):
                yield SystemCommand(f"Job set: {binding.description}", binding.tooltip,
                                    getattr(self, f"action_{binding.action}"))

    def offers(self, action: str) -> bool:
        """Whether the app offers one of its own actions: all of them, except, in a read-only
        app, those that change something."""
        return not (self.read_only and getattr(getattr(self, f"action_{action}", None),
                                               "changes_things", False))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Textual asks this before running a key's action and to decide what the footer
        shows: False hides and disables an action the app does not offer."""
        if not self.offers(action):
            return False
        return super().check_action(action, parameters)

    def on_mount(self) -> None:
        """Apply the config file's [keys] table; a bad entry is named in a notification."""
        config = self.manager.config
        keymap, problems = checked_keymap(config.keys, type(self), str(config.source or "configuration"))
        self.set_keymap(keymap)
        for problem in problems:
            self.notify(problem, title="config", severity="error", timeout=10)

    # -- helpers -----------------------------------------------------------------------------

    def _target(self) -> JobSetSummary | None:
        summary = self.selected_summary()
        if summary is None:
            self.notify("No job set selected", severity="warning")
        return summary

    def _in_background(self, doing: str, call: Callable[[], str | None]) -> None:
        """Run ``call`` in a thread worker; its return value (if any) is the success notice,
        an exception becomes an error notice with the reason."""

        def work() -> None:
            try:
                message = call()
            except Exception as exc:  # noqa: BLE001 - every failure is shown, the app goes on
                log.exception("%s failed", doing)
                self.call_from_thread(self.notify, error_text(exc),
                                      title=f"{doing} failed", severity="error", timeout=10)
                return
            if message:
                self.call_from_thread(self.notify, message, title=doing)

        self.run_worker(work, name=doing, group="set-actions", thread=True, exit_on_error=False)

    # -- actions -----------------------------------------------------------------------------

    @changes_things
    def action_new_job_set(self) -> None:
        """Open the new-set form; once it has started a set, say so."""

        def started(job_set: ManagedJobSet | None) -> None:
            if job_set is not None:
                self.notify(f"started job set {job_set.name()} ({job_set.job_set_id()}) on "
                            f"{job_set.backend_spec()}", title="new job set")
                self.follow_set(job_set.job_set_id())

        self.push_screen(NewJobSetForm(self.manager), started)

    @changes_things
    def action_cancel_job_set(self) -> None:
        """Ask, then cancel every unfinished job of the selected set (results kept)."""
        summary = self._target()
        if summary is None:
            return
        if summary.state in SET_FINAL:
            self.notify(f"job set {summary.id} is already {summary.state}; nothing to cancel",
                        severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._in_background("cancel", lambda: self._cancel(summary))

        self.push_screen(cancel_dialog(summary), answered)

    def _cancel(self, summary: JobSetSummary) -> str:
        if not self.manager.cancel_job_set(summary.id):
            return f"job set {summary.id} had already finished; nothing to cancel"
        return f"cancelling job set {set_label(summary)}; finished jobs keep their results"

    @changes_things
    def action_retry_job_set(self) -> None:
        """Run the failed and cancelled jobs of the selected set again (as ``qjm retry``)."""
        summary = self._target()
        if summary is None:
            return
        redo = summary.counts.get(JobStatus.FAILED, 0) + summary.counts.get(JobStatus.CANCELLED, 0)

        def retry() -> str:
            self.manager.retrieve_job_set(summary.id).retry_failed()
            if not self.manager.running_here(summary.id):
                return f"job set {set_label(summary)} has no failed or cancelled jobs; nothing to retry"
            return f"retrying {redo} jobs of job set {set_label(summary)}"

        self._in_background("retry", retry)

    @changes_things
    def action_resume_job_set(self) -> None:
        """Finish the selected interrupted set (as ``qjm resume``): reattach to jobs the backend
        still has and run those that never finished."""
        summary = self._target()
        if summary is None:
            return
        state = self.manager.job_set_state(summary.id)  # the store's word now, not the list's
        if state != SetState.INTERRUPTED:
            self.notify(f"job set {set_label(summary)} is {state}, not interrupted; nothing to resume",
                        severity="warning")
            return

        def resume() -> str:
            self.manager.retrieve_job_set(summary.id).resume()
            return f"resuming job set {set_label(summary)}"

        self._in_background("resume", resume)

    @changes_things
    def action_rename_job_set(self) -> None:
        """Give the selected set a new name."""
        summary = self._target()
        if summary is None:
            return

        def answered(name: str | None) -> None:
            if name is not None and name != summary.name:
                self._in_background("rename", lambda: (
                    f"job set {summary.id} renamed: {summary.name!r} -> "
                    f"{self.manager.rename_job_set(summary.id, name)!r}"))

        self.push_screen(TextPrompt(f"Rename {set_label(summary)}", summary.name,
                                    hint="Enter renames, Escape keeps the name"), answered)

    @changes_things
    def action_tag_job_set(self) -> None:
        """Add and remove tags of the selected set in one line (``+a -b``), or replace them."""
        summary = self._target()
        if summary is None:
            return

        def answered(text: str | None) -> None:
            if text is None:
                return
            replace, adds, removes = parse_tag_edit(text)
            if replace is None and not adds and not removes:
                self.notify(f"tags of {set_label(summary)} unchanged", timeout=3)
                return

            def retag() -> str:
                tags = self.manager.retrieve_job_set(summary.id).update_tags(
                    replacement_tags=replace, additional_tags=adds or None, removal_tags=removes or None)
                return f"job set {set_label(summary)} tags: {', '.join(tags) or '(none)'}"

            self._in_background("tags", retag)

        current = " ".join(summary.tags)
        self.push_screen(TextPrompt(f"Tags of {set_label(summary)}", "",
                                    placeholder="+add -remove, or a list that replaces them",
                                    hint=f"now: {current or '(none)'}.  '+a -b' adds a and removes b; "
                                         "'a, b' replaces all; '-*' removes all; empty keeps them"),
                         answered)

    @changes_things
    def action_export_job_set(self) -> None:
        """Write the selected set's results to a file (JSON, CSV or a Qiskit Result)."""
        summary = self._target()
        if summary is None:
            return

        def answered(choice: tuple[str, Path] | None) -> None:
            if choice is None:
                return
            fmt, path = choice

            def write() -> str:
                exported = export(self.manager, self.manager.retrieve_job_set(summary.id), fmt,
                                  partial=True)
                write_file(path, exported.text)
                extra = f" ({exported.missing})" if exported.missing else ""
                return f"wrote {exported.experiments} experiments to {path} ({fmt}){extra}"

            self._in_background("export", write)

        self.push_screen(ExportDialog(summary.name, Path.cwd()), answered)

    def action_copy_job_set_id(self) -> None:
        """Copy the selected set's id to the clipboard (OSC 52, so it works over SSH)."""
        summary = self._target()
        if summary is not None:
            self.copy_to_clipboard(summary.id)
            self.notify(f"copied {summary.id}", timeout=3)

    @changes_things
    def action_delete_job_set(self) -> None:
        """Ask, then delete the selected set from the store; a running set is refused."""
        summary = self._target()
        if summary is None:
            return
        if summary.state == SetState.RUNNING:
            self.notify(f"job set {set_label(summary)} is running; cancel it (x) and let it stop "
                        "before deleting it", title="delete", severity="error")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                def delete() -> str:
                    self.manager.delete_job_set(summary.id)
                    return f"deleted job set {set_label(summary)}"

                self._in_background("delete", delete)

        body = (f"{summary.n_experiments} experiments in {summary.total_jobs} jobs, and every result "
                "of them, are removed from the store. This cannot be undone.")
        self.push_screen(ConfirmDialog(f"Delete {set_label(summary)}?", body, "Delete"), answered)

    @changes_things
    def action_save_histogram(self) -> None:
        """Save the histogram on screen as an SVG picture, to a file the user names."""
        shown = self.histogram_counts()
        if shown is None:
            self.notify("No histogram on screen to save", severity="warning")
            return
        title, counts = shown
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in title).strip("._")

        def answered(text: str | None) -> None:
            if not text:
                return
            path = Path(text).expanduser()

            def write() -> str:
                write_file(path, histogram_svg(title, counts))
                return f"saved the histogram to {path}"

            self._in_background("save histogram", write)

        default = Path.cwd() / f"{stem or 'histogram'}.svg"
        self.push_screen(TextPrompt("Save the histogram as SVG", str(default),
                                    hint="Enter saves, Escape backs out"), answered)

    async def action_quit(self) -> None:
        """Quit at once, or, while this app runs job sets, ask what becomes of them (Ctrl+C
        again on that question keeps them running in the background and quits)."""
        if isinstance(self.screen, QuitDialog):
            self.screen.dismiss("background")
            return
        running = self.manager.active()
        if not running:
            self.exit()
            return
        names = []
        for set_id in running:
            try:
                names.append(self.manager.store.get_job_set(set_id).name)
            except Exception:  # noqa: BLE001 - a name is only for the question
                names.append(set_id)

        def answered(choice: str | None) -> None:
            if choice == "background":
                self.run_worker(lambda: self._hand_over(running), name="hand over", group="quit",
                                thread=True, exit_on_error=False)
            elif choice == "cancel":
                self.run_worker(lambda: self._cancel_all(running), name="cancel all", group="quit",
                                thread=True, exit_on_error=False)

        self.push_screen(QuitDialog(names), answered)

    def _hand_over(self, set_ids: list[str]) -> None:
        """Let go of the sets running here and start a detached ``qjm resume`` for each, which
        reattaches to their jobs and finishes them; then quit, saying where they went."""
        self.call_from_thread(self.notify, "handing the job sets to a background process…")
        store = self.manager.store.path
        try:
            self.manager.detach(timeout=30)
        except Exception as exc:  # noqa: BLE001 - the app stays open and says why
            self.call_from_thread(self.notify, str(exc), title="keep running failed", severity="error")
            return
        lines = []
        for set_id in set_ids:
            try:
                child, report, log_file = launch(resume_command(set_id, store))
            except Exception as exc:  # noqa: BLE001 - said in the exit message; the set stays resumable
                lines.append(f"job set {set_id} is interrupted ({exc}); finish it with `qjm resume {set_id}`")
                continue
            if report is None or "error" in report:
                why = report["error"] if report else f"it ended (exit code {child.poll()})"
                lines.append(f"job set {set_id} did not restart in the background: {why}; "
                             f"run `qjm resume {set_id}` (log {log_file})")
            else:
                lines.append(f"job set {set_id} goes on in the background (pid {child.pid}, log "
                             f"{log_file}); follow it with `qjm wait {set_id}`")
        self.call_from_thread(self.exit, message="\n".join(lines))

    def _cancel_all(self, set_ids: list[str]) -> None:
        """Cancel the sets running here, wait for them to stop, then quit."""
        for set_id in set_ids:
            self.manager.cancel_job_set(set_id)
        self.manager.wait_all(timeout=30)
        self.call_from_thread(self.exit, message="\n".join(
            f"job set {set_id} cancelled; finished jobs keep their results, `qjm retry {set_id}` "
            "runs the rest" for set_id in set_ids))
