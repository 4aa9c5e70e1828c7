"""SQLite write transactions shared by the store and the emulator's job file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short write transaction on an autocommit connection.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so two writers wait for each other at
    the start (within the busy timeout) instead of failing half-way.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        # A COMMIT that fails (a full disk) leaves the transaction open: it is rolled back too.
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
