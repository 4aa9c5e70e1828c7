"""``qjm serve`` in a browser: how long until the app is drawn, and what each viewer costs.

Run:  python -m benchmarks.bench_serve [--repeats 5] [--viewers 4] [--screenshots DIR]

Needs Chromium (``apt-get install chromium``) and the web extra. A store is filled by
``qjm demo`` (two sets) in a fresh folder; one headless Chromium runs throughout, as a user's
browser would already be running. Each round:

* starts ``qjm serve --port 0`` as a fresh command and times, from that moment, the URL printed
  (the server is up), then, with the URL opened in a new tab at once, the first bytes of the
  app reaching the page, and the app drawn (the job sets' pane with the sets' names);
* stops the server with SIGINT and times until it has exited with its app processes;
* reads the CPU time the server had used when its URL was printed, and the app process when it
  was drawn (figures that depend less on what else the machine is doing).

Then ``--viewers`` tabs are opened on one server, one after the other, and the memory of each
app process is read from /proc (RSS, and PSS, which shares the pages the processes share
between them), with the server's own. Prints medians and the figures for the README.
With ``--screenshots DIR`` it also saves the README's pictures (desktop and phone sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.chromium import Chromium, chromium_path
from tests.serving import app_processes


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process, in KiB, from /proc/PID/smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(store: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], str, float]:
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "qjm_tui.cli", "serve", "--port", "0",
                                "--store", str(store), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 120)
    url = process.stdout.readline().strip() if ready else ""
    assert url.startswith("http://"), "qjm serve printed no URL"
    return process, url, started


def stop_server(process: subprocess.Popen[str], store: Path) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    while app_processes(str(store)):
        time.sleep(0.02)
    return time.monotonic() - started


async def rounds(chromium: Chromium, store: Path, env: dict[str, str],
                 repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"url printed": [], "first bytes": [], "app drawn": [], "stop": [],
                                     "server cpu": [], "app cpu": []}
    for _ in range(repeats):
        process, url, started = start_server(store, env)
        times["url printed"].append(time.monotonic() - started)
        times["server cpu"].append(cpu_seconds(process.pid))
        page = await chromium.new_page(1280, 800)
        await page.navigate(url)
        while not page.received:
            await asyncio.sleep(0.005)
        times["first bytes"].append(time.monotonic() - started)
        await page.wait_for_text("Job sets", "calibration", "demo", timeout=120)
        times["app drawn"].append(time.monotonic() - started)
        times["app cpu"].append(sum(cpu_seconds(pid) for pid in app_processes(str(store))))
        await page.close()
        times["stop"].append(await asyncio.to_thread(stop_server, process, store))
    return times


async def viewers(chromium: Chromium, store: Path, env: dict[str, str], count: int,
                  screenshots: Path | None) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    process, url, _ = start_server(store, env, "--max-sessions", str(count))
    try:
        pages = []
        for _ in range(count):
            page = await chromium.new_page(1280, 800)
            await page.navigate(url)
            await page.wait_for_text("Job sets", "calibration", timeout=120)
            pages.append(page)
        await asyncio.sleep(3)  # let every app settle after its first draw
        apps = [memory_kib(pid) for pid in app_processes(str(store))]
        server = memory_kib(process.pid)
        if screenshots is not None:
            await pages[0].evaluate("document.querySelector('.xterm-helper-textarea').focus()")
            await pages[0].screenshot(screenshots / "browser-desktop-1280x800.png")
            for page in pages:
                await page.close()
            phone = await chromium.new_page(390, 844, mobile=True)
            await phone.navigate(url)
            await phone.wait_for_text("Job sets", "calibration", timeout=120)
            await phone.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
            since = len(phone.received)
            await phone.press("2")
            await phone.wait_for_text("2 Jobs", since=since)
            await asyncio.sleep(1)
            await phone.screenshot(screenshots / "browser-phone-390x844.png")
        return apps, server
    finally:
        stop_server(process, store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--screenshots", type=Path, help="save the README's screenshots here")
    args = parser.parse_args()
    assert chromium_path(), "Chromium is not installed (apt-get install chromium)"
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="qjm-serve-bench-") as tmp:
        folder = Path(tmp)
        home = folder / "lab"
        env = {**os.environ, "QJM_HOME": str(home), "QJM_CONFIG": str(folder / "none.toml")}
        for extra in (["--circuits", "300", "-n", "calibration", "--seed", "7"],
                      ["--circuits", "1000", "-n", "demo"]):
            subprocess.run([sys.executable, "-m", "qjm_tui.cli", "demo", "-q", *extra], env=env,
                           check=True, stdout=subprocess.DEVNULL)
        store = home / "qjm.sqlite"

        async def run() -> tuple[dict[str, list[float]], list[tuple[int, int]], tuple[int, int]]:
            async with Chromium.launch(folder / "chromium-profile") as chromium:
                warm = await chromium.new_page(800, 600)  # the browser has opened a page before
                await warm.close()
                times = await rounds(chromium, store, env, args.repeats)
                apps, server = await viewers(chromium, store, env, args.viewers, args.screenshots)
                return times, apps, server

        times, apps, server = asyncio.run(run())
    print(f"qjm serve, {args.repeats} rounds (fresh command each; browser already running), medians "
          f"(load average before: {load:.1f} on {os.cpu_count()} cores):")
    for name, values in times.items():
        print(f"  {name:12s} {statistics.median(values):6.2f} s   "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    rss = [r / 1024 for r, _ in apps]
    pss = [p / 1024 for _, p in apps]
    print(f"memory with {len(apps)} viewers: per app process RSS median {statistics.median(rss):.0f} MiB "
          f"(min {min(rss):.0f}, max {max(rss):.0f}), PSS median {statistics.median(pss):.0f} MiB; "
          f"server RSS {server[0] / 1024:.0f} MiB, PSS {server[1] / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
