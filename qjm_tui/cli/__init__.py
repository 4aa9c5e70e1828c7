"""The ``qjm`` command line: run job sets and look at them from scripts, CI jobs and shells.

Conventions, so that ``qjm`` behaves like any well-made Unix tool:

- Data goes to stdout (a job-set id, a table, a report, JSON or CSV); progress and messages go
  to stderr. ``ID=$(qjm run bell.qasm)`` therefore captures just the id.
- Progress is a live bar when stderr is a terminal, and plain, throttled lines otherwise (logs
  of CI jobs stay readable). ``-q`` turns it off.
- Every read command takes ``--json``. Job-set ids may be shortened to any unique prefix.
- Errors are one line on stderr, ``qjm: error: <what is wrong, and where>``; ``--debug`` adds
  the traceback.
- Exit codes: 0 success; 1 the job set finished with failures (partial, failed, cancelled,
  interrupted), a timeout, or another failure; 2 bad usage or bad input (unreadable circuit
  files, invalid shots, an unknown backend, a circuit the backend cannot run, an unknown or
  ambiguous job-set id); 130 interrupted by Ctrl-C.

Running in the background (``qjm run --detach``): a job set's jobs run in threads of the
process that started it, so that process has to live until the set is finished. ``--detach``
therefore starts a child process (``python -m qjm_tui.cli run ...`` in a new session, so a
closing terminal or Ctrl-C does not reach it, with its output appended to the log file) and
hands it a pipe. The child does everything a foreground run does - loads the files, checks
shots and options, resolves the backend, validates the circuits and stores the job set - and
then writes one JSON line to the pipe: the new id, or the error and its exit code. The parent
waits for that line, so ``qjm run --detach`` exits 2 on bad input exactly like a foreground run,
and when it exits 0 the job set is already in the store and can be watched with ``qjm wait``.
Validation runs once, in the same code (``JobManager.run``) for both modes, so the two can never
disagree. If the child dies before reporting, the parent notices (it polls the child while it
waits) and points at the log. ``retry --detach`` and ``resume --detach`` work the same way.
(POSIX only: the pipe is passed with ``pass_fds`` and watched with ``select``.)

``qjm`` with no arguments prints the usage help; the terminal interface will take its place.

Layout: ``parser`` (arguments and help), ``entry`` (``main``: errors become one line and an exit
code), ``commands`` (run and manage job sets), ``results`` (results and export), ``environment``
(backends and config), ``progress`` (following a set to the end), ``detach`` (background runs)
and ``output`` (stdout/stderr, tables, JSON, exit codes).
"""

from qjm_tui.cli.entry import main
from qjm_tui.cli.output import CliError, exit_code_for, to_json
from qjm_tui.cli.parser import build_parser
from qjm_tui.views import histogram_lines

__all__ = ["CliError", "build_parser", "exit_code_for", "histogram_lines", "main", "to_json"]
