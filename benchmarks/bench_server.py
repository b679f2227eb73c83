"""Server throughput: nglive's in-kernel data server vs Python's http.server, side by side.

4 KiB values, 1000 distinct keys, 16 concurrent connections on loopback, driven by
``wrk`` (Debian package) with a Lua script that picks keys at random. nglive serves
from its in-memory tensorstore Store; ``http.server`` serves the same bytes from disk
(ThreadingHTTPServer, as ``python -m http.server`` does). Each server runs in its own
process, like a kernel. Results go to benchmarks/results/server.json.

Run: python benchmarks/bench_server.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

N_KEYS = 1000
VALUE_SIZE = 4096
RESULTS = Path(__file__).parent / "results" / "server.json"

NGLIVE_SERVER = textwrap.dedent(
    """
    import sys, threading, os
    from nglive.store import Store
    from nglive.server import DataServer
    store = Store()
    server = DataServer(store)
    files = {f"k{i}": os.urandom(VALUE_SIZE) for i in range(N_KEYS)}
    gen = store.write_generation("bench", files)
    print(server.url_for(gen.path + "/"), flush=True)
    threading.Event().wait()
    """.replace("VALUE_SIZE", str(VALUE_SIZE)).replace("N_KEYS", str(N_KEYS))
)

HTTP_SERVER = textwrap.dedent(
    """
    import sys, os, functools, http.server
    root = sys.argv[1]
    for i in range(N_KEYS):
        with open(os.path.join(root, f"k{i}"), "wb") as f:
            f.write(os.urandom(VALUE_SIZE))
    class Quiet(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def log_message(self, *a):
            pass
    handler = functools.partial(Quiet, directory=root)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(f"http://127.0.0.1:{srv.server_address[1]}/", flush=True)
    srv.serve_forever()
    """.replace("VALUE_SIZE", str(VALUE_SIZE)).replace("N_KEYS", str(N_KEYS))
)

LUA = textwrap.dedent(
    """
    local base = os.getenv("BENCH_PATH")
    math.randomseed(42)
    request = function()
      return wrk.format("GET", base .. "k" .. math.random(0, LAST_KEY))
    end
    """.replace("LAST_KEY", str(N_KEYS - 1))
)


def parse_wrk(text: str) -> dict:
    def to_ms(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    lat = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)", text, re.M))
    out = {}
    for pct in ("50", "99"):
        m = re.match(r"([\d.]+)(us|ms|s)", lat[pct])
        out[f"p{pct}_ms"] = round(to_ms(*m.groups()), 3)
    out["requests_per_s"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["errors"] = int(m.group(1)) if m else 0
    return out


def run_one(name: str, code: str, args: list[str], seconds: int, connections: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        m = re.match(r"(http://[^/]+)(/.*)", url)
        host, path = m.groups()
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(LUA)
        # warm up, then measure
        env = dict(os.environ, BENCH_PATH=path)
        subprocess.run(["wrk", "-t2", f"-c{connections}", "-d2s", "-s", f.name, host],
                       env=env, capture_output=True, check=True)
        res = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, host],
            env=env, capture_output=True, text=True, check=True,
        )
        os.unlink(f.name)
        out = parse_wrk(res.stdout)
        out["tool"] = name
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        rows.append(run_one("nglive DataServer (memory Store)", NGLIVE_SERVER, [],
                            args.seconds, args.connections))
        rows.append(run_one("python http.server (disk)", HTTP_SERVER, [root],
                            args.seconds, args.connections))
    result = {
        "benchmark": "server",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {"value_bytes": VALUE_SIZE, "keys": N_KEYS, "connections": args.connections,
                  "seconds": args.seconds, "load": "wrk -t2 on loopback"},
        "results": rows,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['tool']:36s} {r['requests_per_s']:9.0f} req/s  p50 {r['p50_ms']:7.2f} ms  "
              f"p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}")


if __name__ == "__main__":
    main()
