"""Rows no qjm call writes: what a killed process, another host or an older qjm leaves in a
store. Tests set such stores up with these; everything qjm itself writes goes through the
store's typed setters."""

from __future__ import annotations

from typing import Any

from qjm_tui.core.store import Store


def forge_set(store: Store, job_set_id: str, **columns: Any) -> None:
    """Overwrite columns of a job set's row (``owner_pid=`` a dead process, ``created=``...)."""
    _forge(store, "UPDATE job_sets SET {} WHERE id=?", (job_set_id,), columns)


def forge_job(store: Store, job_set_id: str, index: int, **columns: Any) -> None:
    """Overwrite columns of one job's row."""
    _forge(store, "UPDATE jobs SET {} WHERE job_set_id=? AND idx=?", (job_set_id, index), columns)


def _forge(store: Store, sql: str, key: tuple[Any, ...], columns: dict[str, Any]) -> None:
    with store._change() as (tx, seq):
        cur = tx.execute(sql.format(", ".join(f"{name}=?" for name in [*columns, "seq"])),
                         (*columns.values(), seq, *key))
        assert cur.rowcount == 1, f"no row for {key}"
