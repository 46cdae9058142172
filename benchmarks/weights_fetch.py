"""`weights fetch` throughput: one file of EfficientNet-b7's size (255 MiB, the largest pinned
file) served by a local HTTP server, downloaded + sha256-verified, then the idempotent rerun
(verify only). The real pinned hashes cannot be matched by generated content, so the file is named
after its own hash (as tests/test_weights_fetch.py does).

    .venv/bin/python benchmarks/weights_fetch.py --mib 255

Prints one line per step (paste into BENCHMARKS.md with the command line).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import os
import tempfile
import threading
import time
from pathlib import Path

import salience  # noqa: F401 - torchvision shim
from salience.models.fetch import fetch


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=255, help="file size in MiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mirror = Path(tmp) / "mirror"
        mirror.mkdir()
        body = os.urandom(args.mib * 2**20)
        name = f"big-{hashlib.sha256(body).hexdigest()[:8]}.pth"
        (mirror / name).write_bytes(body)
        del body
        handler = functools.partial(_Quiet, directory=str(mirror))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/"
        pins = {"big": "https://download.pytorch.org/models/" + name}
        for step in ("download + verify", "rerun (verify only)"):
            t0 = time.perf_counter()
            [(_, status)] = fetch(None, Path(tmp) / "dest", url, progress=False, pins=pins)
            print(f"{step}: {status}, {args.mib} MiB in {time.perf_counter() - t0:.2f} s")
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
