"""``qjm serve``: the app in web browsers (``qjm_tui.web``, loaded only for this command)."""

from __future__ import annotations

import argparse

from qjm_tui.cli.output import EXIT_USAGE, CliError

#: what to run when the web extra is missing
INSTALL_HINT = "pip install 'qjm-tui[web]'"


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the app on the store until Ctrl+C; each browser tab gets its own app process."""
    try:
        from qjm_tui.web.server import ServeError, serve
    except ImportError as exc:
        raise CliError(f"serving the app to browsers needs the web extra ({exc.name or exc} is not "
                       f"installed); install it with: {INSTALL_HINT}", EXIT_USAGE) from None
    try:
        return serve(store=args.store, host=args.host, port=args.port,
                     read_only=getattr(args, "read_only", False), max_sessions=args.max_sessions,
                     allow_hosts=args.allow_host)
    except ServeError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
