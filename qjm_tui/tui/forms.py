"""The new-job-set form: circuit files, backend and options, checked before anything is stored.

The check runs in a thread of its own (a big QPY file or a transpile must not freeze the form;
Escape abandons it and `q` quits the app without waiting for it) and
uses the same code as ``qjm run``: the files are loaded by :func:`qjm_tui.core.inputs.load_circuit_files`
and the set is created by ``JobManager.run``, which validates shots, width and options before
it stores anything. An error is shown under the field it concerns; the store is unchanged.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from qjm_tui.core.errors import BackendConfigurationError, JobManagerError, UnknownBackendError
from qjm_tui.core.inputs import load_circuit_files
from qjm_tui.core.jobset import ManagedJobSet
from qjm_tui.core.text import error_text
from qjm_tui.tui.dialogs import Dialog, FreshInput

if TYPE_CHECKING:
    from qjm_tui.compose import JobManager

log = logging.getLogger("qjm_tui.tui")

#: the fields an error can be shown under, in the order the form shows them
FIELDS = ("files", "backend", "shots", "name", "tags", "per-job")


class PathSuggester(Suggester):
    """Completes the last path typed from the file system: the first entry of its folder that
    starts with what is typed (folders end in ``/``, so completion goes on into them)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        before, _, word = value.rpartition(" ")
        if not word or any(ch in word for ch in "*?["):
            return None
        folder, slash, prefix = word.rpartition("/")
        where = Path(os.path.expanduser(folder or "/")) if slash else Path(".")
        try:
            names = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(where)
                           if entry.name.startswith(prefix) and not entry.name.startswith("."))
        except OSError:
            return None
        if not names:
            return None
        return f"{before} " * bool(before) + f"{folder}{slash}{names[0]}"


class FieldError(Exception):
    """A problem with what one field of the form holds."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def backend_choices(default: str) -> list[str]:
    """The backends the form offers: the configured default first, then each spec of
    ``qjm backends`` that runs as written (families such as ``aer:<device>`` are typed)."""
    from qjm_tui.backends.registry import KNOWN_SPECS

    concrete = [spec.split("[", 1)[0] for spec in KNOWN_SPECS if "<" not in spec]
    return [default, *(spec for spec in concrete if spec != default)]


def expand_files(text: str) -> list[str]:
    """The files a field names: paths separated by spaces, each a path or a glob."""
    words = text.split()
    if not words:
        raise FieldError("files", "give a circuit file or a glob, such as circuits/*.qasm")
    paths: list[str] = []
    for word in words:
        word = os.path.expanduser(word)
        if any(ch in word for ch in "*?["):
            matched = sorted(glob.glob(word, recursive=True))
            if not matched:
                raise FieldError("files", f"{word}: no file matches")
            paths.extend(matched)
        else:
            paths.append(word)
    return paths


def default_name(files: str) -> str | None:
    """A set's name when the form's name is left empty: what the files field names (a glob as
    typed, one file by its name without suffix, several as the first and how many more), so a
    set is not listed by its id alone."""
    words = files.split()
    if not words:
        return None
    if len(words) == 1 and any(ch in words[0] for ch in "*?["):
        return words[0][:200]
    first = Path(words[0]).stem or words[0]
    return (first if len(words) == 1 else f"{first} and {len(words) - 1} more")[:200]


def parse_count(field: str, text: str, what: str) -> int | None:
    """A whole number typed in a field (None when empty); the message matches the core's."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise FieldError(field, f"{what} must be a positive integer, got {text!r}") from None


def field_for(exc: JobManagerError) -> str:
    """The field an error from ``JobManager.run`` is about, read from what it names."""
    text = str(exc)
    if isinstance(exc, (UnknownBackendError, BackendConfigurationError)):
        return "backend"
    for prefix, field in (("shots", "shots"), ("max_experiments_per_job", "per-job"),
                          ("the job set's name", "name"), ("a tag", "tags"), ("job_tags", "tags")):
        if text.startswith(prefix):
            return field
    if "shots" in text:
        return "shots"
    return "backend" if "backend" in text else "files"


def _field(label: str, widget: Widget, error_id: str | None = None) -> ComposeResult:
    """One labelled field of the form and the line under it where its error is shown."""
    with Horizontal(classes="row"):
        yield Label(label)
        yield widget
    yield Static("", id=error_id or f"{widget.id}-error", classes="error", markup=False)


class NewJobSetForm(Dialog[ManagedJobSet | None]):
    """Start a job set: files (path or glob, completed as typed), backend, shots, name, tags,
    experiments per job and transpile. Enter in the files field submits with the defaults."""

    DEFAULT_CSS = """
    NewJobSetForm { align: center middle; }
    NewJobSetForm > VerticalScroll {
        width: 84; max-width: 100%; height: auto; max-height: 100%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    NewJobSetForm .title { text-style: bold; margin-bottom: 1; }
    NewJobSetForm .row { height: auto; }
    NewJobSetForm .row > Label { width: 16; padding: 0 1 0 0; }
    NewJobSetForm Input { border: none; height: 1; width: 1fr; padding: 0 1; background: $boost; }
    NewJobSetForm Input:focus { border: none; background: $primary 30%; }
    NewJobSetForm Select { width: 1fr; }
    NewJobSetForm Checkbox { border: none; height: 1; padding: 0; }
    NewJobSetForm .error { color: $error; height: auto; padding-left: 16; display: none; }
    NewJobSetForm .buttons { height: auto; margin-top: 1; }
    NewJobSetForm Button { margin-right: 1; }
    """
    BINDINGS = [Binding("escape", "back", "Back", id="form.back")]

    def __init__(self, manager: JobManager) -> None:
        super().__init__()
        self.manager = manager
        #: the check under way (a daemon thread), and whether the form was left meanwhile
        self._checking: threading.Thread | None = None
        self._abandoned = threading.Event()
        self._app: App[object] | None = None

    def compose(self) -> ComposeResult:
        config = self.manager.config
        choices = backend_choices(config.default_backend)
        with VerticalScroll() as scroll:
            scroll.can_focus = False  # Tab goes from field to field, not to the frame
            yield Label("New job set: Enter starts it, Escape backs out", classes="title")
            yield from _field("Circuit files", FreshInput(
                placeholder="OpenQASM 2/3 or QPY: a path or a glob (circuits/*.qasm)",
                suggester=PathSuggester(), id="files"))
            with Horizontal(classes="row"):
                yield Label("Backend")
                yield Select([(spec, spec) for spec in choices], value=choices[0], allow_blank=False,
                             id="backend")
            yield from _field("  or type one", FreshInput(
                placeholder="a spec such as aer:fake_manila (overrides the list)", id="backend-spec"),
                error_id="backend-error")
            yield from _field("Shots", FreshInput(str(config.default_shots), id="shots"))
            yield from _field("Name", FreshInput(placeholder="default: named after the circuit files",
                                                 id="name"))
            yield from _field("Tags", FreshInput(placeholder="comma separated: nightly, calibration",
                                                 id="tags"))
            yield from _field("Per job", FreshInput(
                placeholder="max experiments per job (default: the backend's limit)", id="per-job"))
            with Horizontal(classes="row"):
                yield Label("Transpile")
                yield Checkbox("translate the circuits for the backend", id="transpile")
            yield Static("", id="status", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Start", id="start", variant="primary")
                yield Button("Back", id="back")
        yield from self.compose_key_bar()

    def on_mount(self) -> None:
        self.query_one("#files", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def submit(self) -> None:
        if self._checking is not None:
            return  # one check at a time; Escape abandons it
        for field in FIELDS:
            self.query_one(f"#{field}-error", Static).display = False
        self.query_one("#status", Static).update("checking… (Escape abandons the check)")
        self.query_one("#start", Button).disabled = True
        fields = {name: self.value(name) for name in ("backend-spec", "tags", "shots", "per-job",
                                                      "files", "name")}
        fields["backend"] = str(self.query_one("#backend", Select).value)
        transpile = self.query_one("#transpile", Checkbox).value
        # A plain daemon thread, not a Textual worker: those run on the event loop's executor,
        # which the app waits for when it exits, so a long check (a large file, a transpile)
        # would keep `q` from quitting. Abandoned, its outcome is dropped.
        self._app = self.app  # the thread has no Textual context to find the app by
        self._checking = threading.Thread(target=self.start, args=(fields, transpile),
                                          name="qjm-new-set-check", daemon=True)
        self._checking.start()

    @on(Button.Pressed, "#back")
    def back(self) -> None:
        self.action_back()

    def action_back(self) -> None:
        """Leave the form; a check under way is abandoned (nothing it finds is started)."""
        self._abandoned.set()
        self.dismiss(None)

    def value(self, field: str) -> str:
        """What a text field holds now."""
        return self.query_one(f"#{field}", Input).value

    def start(self, fields: dict[str, str], transpile: bool) -> None:
        """Load and check everything, then store and start the set (in the check's thread)."""
        backend = fields["backend-spec"].strip() or fields["backend"]
        tags = [t.strip() for t in fields["tags"].split(",") if t.strip()]
        try:
            shots = parse_count("shots", fields["shots"], "shots")
            per_job = parse_count("per-job", fields["per-job"], "max_experiments_per_job")
            try:
                circuits = load_circuit_files(expand_files(fields["files"]),
                                              getattr(self.manager.config, "max_circuit_file_mb", None))
            except JobManagerError as exc:
                raise FieldError("files", error_text(exc)) from None
            if self._abandoned.is_set():
                return
            options = {} if shots is None else {"shots": shots}
            name = fields["name"].strip() or default_name(fields["files"])
            try:
                job_set = self.manager.run(circuits, backend=backend, name=name,
                                           max_experiments_per_job=per_job, job_tags=tags or None,
                                           transpile=transpile, **options)
            except JobManagerError as exc:
                raise FieldError(field_for(exc), error_text(exc)) from None
        except FieldError as exc:
            self._answer(self.show_error, exc.field, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the form; the app keeps running
            log.exception("starting a job set failed")
            self._answer(self.show_error, "files", f"could not start: {error_text(exc)}")
            return
        if self._abandoned.is_set():
            # The form was left while the set was being stored: the user backed out of it.
            job_set.cancel()
            log.info("job set %s cancelled: the new-set form was left before its check ended",
                     job_set.job_set_id())
            assert self._app is not None  # set before the check's thread started
            self._answer(self._app.notify, f"job set {job_set.job_set_id()} was cancelled: the form "
                         "was left before its check ended", title="new job set", severity="warning")
            return
        self._answer(self.dismiss, job_set)

    def _answer(self, callback: Callable[..., object], *args: object, **kwargs: object) -> None:
        """Hand the check's outcome to the app's thread; dropped once the form or app is gone."""
        self._checking = None
        app = self._app
        if app is None or not app.is_running or (self._abandoned.is_set() and callback != app.notify):
            return
        with contextlib.suppress(RuntimeError):  # the app has exited meanwhile
            app.call_from_thread(callback, *args, **kwargs)

    def show_error(self, field: str, message: str) -> None:
        """Put an error under its field and give that field the focus."""
        error = self.query_one(f"#{field}-error", Static)
        error.update(message)
        error.display = True
        self.query_one("#status", Static).update("")
        self.query_one("#start", Button).disabled = False
        target = "backend-spec" if field == "backend" else field
        self.query_one(f"#{target}", Input).focus()
