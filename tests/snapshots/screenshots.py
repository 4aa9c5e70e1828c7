"""Draw the app's screens as SVG pictures into ``screenshots/``, from the same frozen scenes
the snapshot tests use:  ``python -m tests.snapshots.screenshots [--out DIR]``."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from tests.snapshots import busy as busy_store
from tests.snapshots.scenes import BUSY_SIZES, SHOTS, SIZES, Scene, Shot, build, stage, stage_busy

ROOT = Path(__file__).resolve().parents[2]


async def draw(scene: Scene, empty: Path, shot: Shot, size: tuple[int, int], out: Path) -> Path:
    """Drive one app to the shot's screen and save it as ``out/<name>-<w>x<h>.svg``."""
    app = (Scene(empty / "qjm.sqlite", scene.manager, scene.clock) if shot.empty else scene).app()
    path = out / f"{shot.name}-{size[0]}x{size[1]}.svg"
    async with app.run_test(size=size) as pilot:
        await stage(pilot, None if shot.empty else scene, shot)
        path.write_text(app.export_screenshot(title=f"qjm: {shot.name}"), encoding="utf-8")
    return path


async def draw_busy(busy: busy_store.BusyStore, size: tuple[int, int], out: Path, folder: Path) -> Path:
    """The busy store at one size, as ``out/busy-<w>x<h>.svg``."""
    app = busy.app(busy.copy(folder / f"{size[0]}x{size[1]}"))
    path = out / f"busy-{size[0]}x{size[1]}.svg"
    async with app.run_test(size=size) as pilot:
        await stage_busy(pilot, busy)
        path.write_text(app.export_screenshot(title="qjm: a busy store"), encoding="utf-8")
    app.manager.close()
    return path


async def draw_quit_dialog(out: Path) -> Path:
    """The question ``q`` asks while this app runs job sets (shown over a bare screen)."""
    from qjm_tui.tui.dialogs import QuitDialog
    from tests.test_tui_dialog_snapshots import DialogHost

    app = DialogHost(QuitDialog(["sweep-0412", "nightly-qv"]))
    path = out / "quit-dialog-80x24.svg"
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        path.write_text(app.export_screenshot(title="qjm: quit-dialog"), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        scene = build()
        empty = Path(tmp) / "empty"
        empty.mkdir()
        try:
            for shot in SHOTS:
                for size in SIZES:
                    print(asyncio.run(draw(scene, empty, shot, size, args.out)))
            print(asyncio.run(draw_quit_dialog(args.out)))
        finally:
            scene.close()
        busy = busy_store.build(Path(tmp) / "busy")
        try:
            for size in BUSY_SIZES:
                print(asyncio.run(draw_busy(busy, size, args.out, Path(tmp))))
        finally:
            busy.close()


if __name__ == "__main__":
    main()
