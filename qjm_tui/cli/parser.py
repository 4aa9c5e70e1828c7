"""The ``qjm`` argument parser: every subcommand, its options, help text and examples."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from qjm_tui.cli.commands import (
    DEMO_BACKEND,
    STATES,
    cmd_cancel,
    cmd_demo,
    cmd_ls,
    cmd_rename,
    cmd_report,
    cmd_resume,
    cmd_retry,
    cmd_run,
    cmd_show,
    cmd_tag,
    cmd_tui,
    cmd_wait,
)
from qjm_tui.cli.environment import cmd_backends, cmd_config, cmd_doctor
from qjm_tui.cli.results import cmd_export, cmd_results
from qjm_tui.cli.serving import cmd_serve

_MAIN_EPILOG = """\
examples:
  qjm                                       open the terminal app (the same as `qjm tui`)
  qjm --read-only                           the app, with every action that changes anything off
  qjm serve                                 the app in a browser (prints the URL to open)
  qjm demo                                  run 1000 random circuits on the local simulator
  qjm run bell.qasm ghz.qpy --shots 2000    run circuit files, wait, print the job-set id
  ID=$(qjm run *.qasm --detach)             run in the background
  qjm wait $ID && qjm results $ID --json    wait for it, then read the counts
  qjm ls --state partial                    job sets with failed jobs

exit codes: 0 success; 1 the job set finished with failures, or the command failed;
            2 bad usage or bad input; 130 interrupted.
environment: QJM_HOME (store and log folder), QJM_CONFIG (config file), QJM_BACKEND,
             QJM_SHOTS, QJM_EXECUTOR.
"""


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}".rstrip() for line in lines)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _index_range(text: str) -> range:
    """``I-J`` (or ``I``) as the experiments I to J."""
    first, sep, last = text.partition("-")
    try:
        low, high = int(first), int(last) if sep else int(first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected experiment indices I-J, got {text!r}") from None
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"expected I-J with 0 <= I <= J, got {text!r}")
    return range(low, high + 1)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the option and what is wrong), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``qjm`` argument parser with every subcommand."""
    from qjm_tui import __version__

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser = _Parser(
        prog="qjm",
        description="qjm: split many quantum circuits into backend jobs, run them, keep the results.",
        epilog=_MAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--version", action="version", version=f"qjm {__version__}")
    parser.add_argument("--read-only", action="store_true",
                        help="open the app with every action that changes anything off")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str,
            epilog: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text + ".",
                           epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    def add_json(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    def add_id(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", metavar="ID", help="job-set id, any unique prefix of it, or its short id "
                                                "(what follows the id's last dash, as the app shows it)")

    def add_move(p: argparse.ArgumentParser) -> None:
        p.add_argument("-b", "--backend", metavar="SPEC",
                       help="run the rest of the set on this backend instead of the one it ran on")

    def add_driving(p: argparse.ArgumentParser) -> None:
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("--wait", action="store_true",
                          help="wait until the job set is finished, showing progress (the default)")
        mode.add_argument("--detach", action="store_true",
                          help="return at once; a background process runs the job set")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        add_json(p)
        p.add_argument("--report-fd", type=int, default=None, help=argparse.SUPPRESS)

    p = add("run", cmd_run, "Run circuit files as one job set", _examples(
        "qjm run bell.qasm                          # default backend and shots",
        "qjm run a.qasm b.qasm c.qpy --backend aer:fake_manila --transpile --shots 4000",
        "qjm run circuits.qpy --max-per-job 50 --name sweep --tag nightly --tag v2",
        "qjm run cal.qpy bell.qpy ghz.qpy --group-by-file   # each file's circuits in one job",
        "qjm run sweep.qpy --backend ibm-runtime:ibm_kyiv --max-job-seconds 300",
        "qjm run big.qpy --option memory=true --option seed_simulator=42",
        "ID=$(qjm run big.qpy --detach) && qjm wait $ID",
        "",
        "Everything is checked before anything is stored: unreadable files, bad shots, an",
        "unknown backend or a circuit the backend cannot run exit 2 and store nothing.",
        "The job-set id goes to stdout; progress goes to stderr.",
    ))
    p.add_argument("files", nargs="+", metavar="FILE", help="OpenQASM 2/3 or QPY files")
    p.add_argument("-b", "--backend", metavar="SPEC", help="backend spec (see `qjm backends`)")
    p.add_argument("-n", "--name", help="a name for the job set (default: its id)")
    p.add_argument("-s", "--shots", type=int, help="shots per circuit (default: from the config)")
    p.add_argument("--max-per-job", type=int, metavar="N", help="at most N circuits per job")
    p.add_argument("--max-jobs-per-set", type=int, metavar="N",
                   help="allow a set of up to N jobs (default: config max_jobs_per_set, 10000)")
    p.add_argument("--max-job-seconds", type=_positive_seconds, metavar="SECONDS",
                   help="keep each job's estimated time on the backend within SECONDS (needs a "
                        "backend with instruction durations; default: config max_job_seconds)")
    together = p.add_mutually_exclusive_group()
    together.add_argument("--group-by-file", action="store_true",
                          help="run each file's circuits in one job (calibrations with the "
                               "circuits they calibrate)")
    together.add_argument("--group", action="append", metavar="I-J", type=_index_range,
                          help="run experiments I to J (global indices) in one job (repeatable)")
    p.add_argument("-t", "--tag", action="append", metavar="TAG", help="a tag (repeatable)")
    p.add_argument("--transpile", action="store_true", help="transpile the circuits for the backend")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a backend run option, VALUE as JSON or text (repeatable)")
    add_driving(p)

    p = add("demo", cmd_demo, "Run random circuits on the local simulator and show the results",
            _examples(
                "qjm demo                                   # 1000 circuits, about 16 jobs",
                "qjm demo --circuits 200 --max-per-job 25 --shots 4000",
                "qjm demo --show 0 --show 42 --detailed",
            ))
    p.add_argument("--circuits", type=int, default=1000, metavar="N", help="how many (default 1000)")
    p.add_argument("--max-per-job", type=int, metavar="N", help="at most N circuits per job")
    p.add_argument("--max-jobs-per-set", type=int, metavar="N",
                   help="allow a set of up to N jobs (default: config max_jobs_per_set, 10000)")
    p.add_argument("-s", "--shots", type=int, help="shots per circuit (default: from the config)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first random circuit (default 0)")
    p.add_argument("-b", "--backend", default=DEMO_BACKEND, metavar="SPEC",
                   help=f"backend spec (default {DEMO_BACKEND})")
    p.add_argument("-n", "--name", default="demo", help="job-set name (default demo)")
    p.add_argument("--show", type=int, action="append", metavar="I",
                   help="draw experiment I's counts (repeatable; default 5, 6 and 7)")
    p.add_argument("--detailed", action="store_true", help="include every job in the report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p = add("ls", cmd_ls, "List job sets, newest first", _examples(
        "qjm ls",
        "qjm ls --state running --state interrupted",
        "qjm ls --name 'sweep*' --tag nightly --backend aer --json",
    ))
    p.add_argument("--name", help="only names matching this (shell-style wildcards)")
    p.add_argument("--tag", action="append", metavar="TAG", help="only sets with this tag (repeatable)")
    p.add_argument("--backend", metavar="SPEC", help="only this backend spec (wildcards allowed)")
    p.add_argument("--state", action="append", choices=STATES, help="only sets in this state (repeatable)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="at most N job sets")
    add_json(p)

    p = add("show", cmd_show, "Show one job set's report", _examples(
        "qjm show 20250101-120000-ab12cd34",
        "qjm show 20250101-1200            # a unique prefix is enough",
        "qjm show ab12cd34                 # so is the short id the app shows",
        "qjm show ID --json | jq .job_list",
    ))
    add_id(p)
    p.add_argument("--brief", action="store_true", help="the summary only, without each job")
    add_json(p)

    p = add("report", cmd_report, "Report on every job set in the store", _examples(
        "qjm report", "qjm report --detailed", "qjm report --json"))
    p.add_argument("--detailed", action="store_true", help="include each job")
    add_json(p)

    p = add("wait", cmd_wait, "Wait until a job set is finished, whichever process runs it", _examples(
        "qjm wait ID",
        "qjm wait ID --timeout 600 || echo 'not done'",
        "qjm wait ID --json -q",
        "",
        "Exits 0 when every job is done, 1 if any failed or was cancelled, on timeout, or if",
        "the set was interrupted (then run `qjm resume ID`).",
    ))
    add_id(p)
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_json(p)

    p = add("cancel", cmd_cancel, "Cancel a job set's unfinished jobs", _examples(
        "qjm cancel ID", "qjm cancel ID --wait",
        "", "Finished jobs keep their results; `qjm retry ID` runs the cancelled ones later."))
    add_id(p)
    p.add_argument("--wait", action="store_true", help="wait until the job set has stopped")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long")

    p = add("retry", cmd_retry, "Run a job set's failed and cancelled jobs again", _examples(
        "qjm retry ID", "qjm retry ID --detach",
        "qjm retry ID --backend emulator      # run the rest on another backend"))
    add_id(p)
    add_move(p)
    add_driving(p)

    p = add("resume", cmd_resume, "Finish an interrupted job set (its process ended)", _examples(
        "qjm resume ID", "qjm resume ID --detach",
        "qjm resume ID --backend aer          # finish on another backend (its service is gone)",
        "", "Jobs already done are not run again."))
    add_id(p)
    add_move(p)
    add_driving(p)
    p.add_argument("--store", type=Path, metavar="PATH", help="the store file (default: $QJM_HOME)")

    p = add("rename", cmd_rename, "Rename a job set", _examples("qjm rename ID 'calibration run 2'"))
    add_id(p)
    p.add_argument("name", metavar="NAME", help="the new name")

    p = add("tag", cmd_tag, "Add or remove a job set's tags; prints the tags", _examples(
        "qjm tag ID                         # list the tags",
        "qjm tag ID --add nightly --add v2 --remove draft"))
    add_id(p)
    p.add_argument("--add", action="append", metavar="TAG", help="add this tag (repeatable)")
    p.add_argument("--remove", action="append", metavar="TAG", help="remove this tag (repeatable)")
    add_json(p)

    p = add("results", cmd_results, "Print the counts of a job set's experiments", _examples(
        "qjm results ID                     # one line per experiment: index, name, shots, counts",
        "qjm results ID --experiment 5      # a histogram",
        "qjm results ID --experiment bell --json",
        "qjm results ID --csv > counts.csv",
        "",
        "Does not wait: run `qjm wait ID` first. Exits 1 if an experiment asked for has no result.",
    ))
    add_id(p)
    p.add_argument("-e", "--experiment", action="append", metavar="I|NAME",
                   help="only this experiment, by index or circuit name (repeatable)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV: experiment,name,outcome,count")

    p = add("export", cmd_export, "Write a job set's results to a file", _examples(
        "qjm export ID --format json -o counts.json",
        "qjm export ID --format csv -o counts.csv",
        "qjm export ID --format qiskit -o result.json",
        "  # then: Result.from_dict(json.load(open('result.json')))",
        "qjm export ID --format qiskit --partial -o - | gzip > result.json.gz",
    ))
    add_id(p)
    p.add_argument("-f", "--format", choices=("json", "csv", "qiskit"), default="json",
                   help="json (counts), csv (counts) or qiskit (a full Result as JSON); default json")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="output file ('-' for stdout)")
    p.add_argument("--partial", action="store_true",
                   help="qiskit format: export the experiments that have results even if some do not")

    p = add("backends", cmd_backends, "List backend specs, their limits and availability", _examples(
        "qjm backends", "qjm backends aer:fake_manila basic", "qjm backends --json"))
    p.add_argument("specs", nargs="*", metavar="SPEC", help="specs to check (default: the known ones)")
    add_json(p)

    p = add("config", cmd_config, "Show the effective configuration and file locations", _examples(
        "qjm config", "qjm config --json | jq -r .store",
        "", "Secrets (tokens, passwords) are shown as ***."))
    add_json(p)

    p = add("doctor", cmd_doctor, "Check the store and recover what can be read from a damaged one",
            _examples(
                "qjm doctor                         # the store in $QJM_HOME",
                "qjm doctor --store ~/runs/qjm.sqlite --output ~/runs/recovered.sqlite",
                "",
                "Runs SQLite's integrity check on a copy of the store. If it finds damage, every",
                "row that can still be read is copied into a new store (default: beside the old",
                "one, named qjm-recovered-<time>.sqlite). The damaged file is never changed.",
                "Exit 0: the store is sound; 1: it is damaged (what could be read was recovered).",
            ))
    p.add_argument("--store", type=Path, metavar="PATH", help="the store file (default: $QJM_HOME)")
    p.add_argument("--output", type=Path, metavar="PATH", help="where the recovered store goes")
    add_json(p)

    p = add("tui", cmd_tui, "Open the full-screen terminal app (what plain `qjm` does)",
            _examples(
                "qjm tui                            # the store in $QJM_HOME; plain `qjm` does the same",
                "qjm tui --store ~/runs/qjm.sqlite",
            ))
    p.add_argument("--store", type=Path, metavar="PATH", help="open this store file instead")
    p.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS,
                   help="every action that changes anything off (nothing started, cancelled, "
                        "deleted or written)")

    p = add("serve", cmd_serve, "Serve the app to web browsers (needs the web extra: qjm-tui[web])",
            _examples(
                "qjm serve                          # on 127.0.0.1:8000; open the URL it prints",
                "qjm serve --read-only              # a shared screen: look, change nothing",
                "qjm serve --port 0                 # any free port",
                "ssh -L 8000:127.0.0.1:8000 lab-machine   # from a laptop, then open the URL",
                "",
                "The printed URL carries a secret token; a browser that opens it gets a session",
                "cookie, and nothing else reaches the app. Each browser tab runs its own copy of",
                "the app on the same store. Stop with Ctrl+C: every copy stops with the server.",
            ))
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS,
                   help="the app changes nothing: no starting, cancelling, deleting or writing files")
    p.add_argument("--max-sessions", type=_positive_int, default=4, metavar="N",
                   help="at most N browser tabs at once, each one app process (default 4)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also accept requests addressed to this host name (a reverse proxy's); "
                        "repeatable")
    p.add_argument("--store", type=Path, metavar="PATH", help="serve this store file instead")
    return parser
