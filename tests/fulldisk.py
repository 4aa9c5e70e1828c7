"""A small disk that can be filled on purpose: a tmpfs of a few megabytes, mounted for a test.

Mounting needs root (or a user namespace that allows it); where it is not allowed the test is
skipped with the reason. ``fill`` takes every free byte with a filler file, ``free`` removes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    """A mounted tmpfs at ``path`` of ``size`` bytes."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Take every free byte but ``leave`` (a write that does not fit fails with ENOSPC)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 65536, 4096, 512, 1):
                block = b"\0" * size
                while True:
                    try:
                        os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
            if leave:
                os.ftruncate(fd, max(os.fstat(fd).st_size - leave, 0))
        finally:
            os.close(fd)

    def free(self) -> None:
        """Give the space back."""
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path).free


@contextlib.contextmanager
def small_disk(where: Path, size_mb: int = 4) -> Iterator[SmallDisk]:
    """Mount a tmpfs of ``size_mb`` MB at ``where`` for the ``with`` block (skip if not allowed)."""
    where.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount"):
        pytest.skip("no mount command to make a small disk with")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'}); "
                    "the full-disk cases need root")
    try:
        yield SmallDisk(where, size_mb << 20)
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:  # something still holds a file there: detach it now, it goes once released
            subprocess.run(["umount", "-l", str(where)], capture_output=True)
