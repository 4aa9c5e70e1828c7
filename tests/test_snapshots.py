"""Snapshots of the app's main screens at 80x24 and 120x40, over a store the real core filled
with times and ids frozen (tests/snapshots/scenes.py), and of the busy store (about 150 sets,
tests/snapshots/busy.py) at 80x24 and 200x60. Update them, after checking the new pictures by
eye, with ``pytest tests/test_snapshots.py --snapshot-update``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.snapshots.busy import BusyStore
from tests.snapshots.scenes import BUSY_SIZES, SHOTS, SIZES, Scene, Shot, build, stage, stage_busy


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    made = build()
    yield made
    made.close()


@pytest.fixture(scope="module")
def empty_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("empty")


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("shot", SHOTS, ids=[s.name for s in SHOTS])
def test_screen(shot: Shot, size: tuple[int, int], scene: Scene, empty_scene: Path,
                snap_compare) -> None:  # noqa: ANN001
    if shot.empty:
        app = Scene(empty_scene / "qjm.sqlite", scene.manager, scene.clock).app()
    else:
        app = scene.app()

    async def run_before(pilot) -> None:  # noqa: ANN001
        await stage(pilot, None if shot.empty else scene, shot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", BUSY_SIZES, ids=[f"{w}x{h}" for w, h in BUSY_SIZES])
def test_busy_store(size: tuple[int, int], busy_store: BusyStore, tmp_path: Path,
                    snap_compare) -> None:  # noqa: ANN001
    app = busy_store.app(busy_store.copy(tmp_path / "store"))

    async def run_before(pilot) -> None:  # noqa: ANN001
        await stage_busy(pilot, busy_store)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
