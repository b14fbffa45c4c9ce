"""Time ``instgs view`` in headless Chromium and take the screenshots of docs/viewer.md.

    python scripts/viewer_timing.py RUN [--query "bed"] [--text-features JSON] \\
        [--shots docs/images/viewer-scannet] [--json out.json]

Starts ``instgs view RUN`` as its own process, drives Debian's Chromium with selenium
(tests/viewer/_browser.py) and reports: seconds from the command to the first stable frame,
the server's resident memory (peak while loading, and after the query), seconds from
clicking "Search" to the first changed frame and to a stable one, and the seconds one
screenshot takes (a frame of Chromium's software WebGL renderer). With ``--shots`` it writes
small PNGs of the loaded page and of the query.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "viewer"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _save(img: np.ndarray, path: Path, width: int = 480) -> None:
    from PIL import Image

    im = Image.fromarray(img)
    im.resize((width, round(img.shape[0] * width / img.shape[1])), Image.LANCZOS).save(path)


def _frame_time(b, n: int = 3) -> float:
    """Seconds per screenshot (each waits for a rendered frame: the software renderer's
    frame time)."""
    t = time.perf_counter()
    for _ in range(n):
        b.shot()
    return (time.perf_counter() - t) / n


def main() -> None:
    import psutil
    from _browser import Browser

    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--query", default="table")
    ap.add_argument("--text-features", type=Path)
    ap.add_argument("--shots", type=Path, help="path prefix of the screenshots, e.g. "
                    "docs/images/viewer-scannet (-> ...-loaded.png, ...-query.png)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--max-splats", type=int)
    args = ap.parse_args()
    port = _free_port()
    cmd = [sys.executable, "-m", "instgs.cli", "view", str(args.run), "--port", str(port)]
    if args.text_features:
        cmd += ["--text-features", str(args.text_features)]
    if args.max_splats:
        cmd += ["--max-splats", str(args.max_splats)]
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd)
    proc = psutil.Process(server.pid)
    peak = 0
    try:
        while True:
            peak = max(peak, proc.memory_info().rss)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
                break
            except OSError:
                pass
            if server.poll() is not None:
                raise SystemExit("instgs view exited")
            time.sleep(0.2)
        t_server = time.perf_counter() - t0
        b = Browser(800, 600)
        b.open(f"http://127.0.0.1:{port}")
        b.wait(lambda: "instances" in b.text(), 300)
        shot0 = b.stable_shot(120)
        t_frame = time.perf_counter() - t0
        peak = max(peak, proc.memory_info().rss)
        q = b.input_by_label("Query")
        q.click()
        q.send_keys(args.query)
        tq = time.perf_counter()
        b.button("Search").click()
        b.wait(lambda: not np.array_equal(b.shot(), shot0), 300)
        t_changed = time.perf_counter() - tq
        shot1 = b.stable_shot(300)
        t_query = time.perf_counter() - tq
        res = {"run": str(args.run), "splats_limit": args.max_splats,
               "server_up_s": t_server, "first_frame_s": t_frame,
               "query_to_changed_frame_s": t_changed, "query_to_stable_frame_s": t_query,
               "seconds_per_screenshot": _frame_time(b), "rss_peak_mb": peak / 2**20,
               "rss_after_query_mb": proc.memory_info().rss / 2**20}
        print(json.dumps(res, indent=1))
        if args.shots:
            args.shots.parent.mkdir(parents=True, exist_ok=True)
            _save(shot0, args.shots.with_name(args.shots.name + "-loaded.png"))
            _save(shot1, args.shots.with_name(args.shots.name + "-query.png"))
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
        b.quit()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
