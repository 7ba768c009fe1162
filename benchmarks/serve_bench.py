"""Serving benchmark: quantpipe against MLServer 1.7 (scikit-learn runtime), side by side.

Measures, on loopback with wrk, requests/s and p50/p99 latency of infer calls of 1 row and
of 1,000 rows (JSON, and the binary tensor data extension) at concurrency 1 and 8, first
for ``quantpipe serve``, then for the framework's floor (a bare Starlette app on the same
uvicorn settings that parses the same request and answers a constant), then for MLServer
serving the same model (``models/fp64.joblib``) with its default settings and with
``parallel_workers: 0`` (inference in the server process, its faster setting on a small
machine) and with two parallel workers; quantpipe runs with one and with two worker
processes. Then times the batch command on 1,000,000 rows. Prints markdown tables and, per
cell, quantpipe's best against MLServer's best (rows/s, that setting's p99, and each side's
lowest p99 whichever setting gave it) and against the floor, and each server's start-up
(to its first ready answer) and resident memory, idle and after the run.

Run from the repository root after ``dvc repro``, with wrk installed (``apt-get install
wrk``)::

    python benchmarks/serve_bench.py [--seconds 10] [--workdir /tmp/quantpipe-bench]
        [--baseline ../quantpipe-old] [--skip-mlserver]

``--baseline`` also serves the models of another checkout with its own code (a clone of
an older revision, after ``dvc repro`` in it), one worker setting after the other, so that
a change is measured against what it replaced in one run.

MLServer is installed on first use into its own virtual environment under ``--workdir``
(``mlserver==1.7.1 mlserver-sklearn==1.7.1 uvloop==0.21.0``; about a minute). Both servers
and wrk share this machine's cores, so quote figures from one run only, side by side.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from quantpipe.data import FEATURE_NAMES, load_dataset

MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0"]
#: The framework's floor: a bare Starlette app on the settings ``quantpipe serve`` gives
#: uvicorn (httptools, uvloop, no access log, no server header), which reads the same
#: request, parses it with orjson as a JSON body (the JSON header of a binary one), and
#: answers a constant. No server built on this stack can be faster per request.
FLOOR_APP = """
import sys
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

ANSWER = b'{"model_name":"fp64","outputs":[]}'


async def infer(request):
    body = await request.body()
    length = request.headers.get("inference-header-content-length")
    orjson.loads(body[: int(length)] if length else body)
    return Response(ANSWER, media_type="application/json")


async def ready(request):
    return Response(b"", status_code=200)


app = Starlette(routes=[
    Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    Route("/v2/health/ready", ready),
])
if __name__ == "__main__":  # python -c: serve; exec'd by infer_inprocess.py: only the app
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
                log_level="warning", access_log=False, server_header=False)
"""
PAYLOADS = ("1-row JSON", "1000-row JSON", "1000-row binary")
ROWS = {"1-row JSON": 1, "1000-row JSON": 1000, "1000-row binary": 1000}
CONCURRENCY = {1: ("-t1", "-c1"), 8: ("-t2", "-c8")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.1)
    sys.exit(f"server not ready after {timeout} s: {url}")


def start_quantpipe(
    workers: int = 1, checkout: Path | None = None, *extra: str
) -> tuple[subprocess.Popen, int, float]:
    """``quantpipe serve`` on a free port, once ready: its process, port and start-up time.

    ``checkout`` serves another checkout's models with its own code (run from it);
    ``extra`` are more options. The server has a session of its own, for :func:`stop`.
    """
    port = free_port()
    command = [sys.executable, "-m", "quantpipe.serve", "--port", str(port), "-q"]
    env = dict(os.environ)
    if checkout is not None:  # run from the checkout: `-m` puts the working directory first
        env["PYTHONPATH"] = str(checkout)  # on sys.path, before PYTHONPATH (so: both)
        command += ["--models-dir", str(checkout / "models")]
    command += ["--workers", str(workers), *extra]
    proc = subprocess.Popen(command, start_new_session=True, env=env, cwd=checkout)
    return proc, port, wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)


def start_floor() -> tuple[subprocess.Popen, int, float]:
    """The framework's floor (:data:`FLOOR_APP`) on a free port, once ready."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", FLOOR_APP, str(port)], start_new_session=True)
    return proc, port, wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def write_bodies(workdir: Path, X: np.ndarray, input_name: str) -> dict[str, Path]:
    """Request bodies and wrk scripts for each payload; returns payload -> lua script."""

    def tensor(rows: np.ndarray) -> dict:
        return {"name": input_name, "shape": list(rows.shape), "datatype": "FP64"}

    bodies = {
        "1-row JSON": (json.dumps({"inputs": [{**tensor(X[:1]), "data": X[0].tolist()}]}), {}),
        "1000-row JSON": (
            json.dumps({"inputs": [{**tensor(X), "data": X.ravel().tolist()}]}),
            {},
        ),
    }
    header = json.dumps(
        {"inputs": [{**tensor(X), "parameters": {"binary_data_size": X.nbytes}}]}
    ).encode()
    scripts = {}
    for name, (text, _) in bodies.items():
        path = workdir / f"{name.replace(' ', '_')}.body"
        path.write_text(text)
        scripts[name] = (path, {"Content-Type": "application/json"})
    path = workdir / "1000-row_binary.body"
    path.write_bytes(header + X.astype("<f8").tobytes())
    scripts["1000-row binary"] = (
        path,
        {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header)),
        },
    )
    out = {}
    for name, (body, headers) in scripts.items():
        lua = workdir / f"{name.replace(' ', '_')}.lua"
        lines = [
            'wrk.method = "POST"',
            f'local f = io.open("{body}", "rb")',
            'wrk.body = f:read("*a")',
            "f:close()",
        ]
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
        lua.write_text("\n".join(lines) + "\n")
        out[name] = lua
    return out


def parse_wrk(text: str) -> dict[str, float]:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": latency("50"),
        "p99": latency("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def run_wrk(url: str, lua: Path, concurrency: int, seconds: int) -> dict[str, float]:
    threads, conns = CONCURRENCY[concurrency]
    subprocess.run(
        ["wrk", threads, conns, "-d2s", "-s", str(lua), url], capture_output=True, check=True
    )
    result = subprocess.run(
        ["wrk", threads, conns, f"-d{seconds}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_wrk(result.stdout)


def first_response(url: str, lua_body: Path, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=lua_body.read_bytes(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def tree_rss(pid: int) -> float:
    """Resident memory (MB) of process ``pid`` and its descendants (the workers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # a process that ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
    return total / 1024


def footprint(results: dict[str, dict]) -> str:
    """Start-up and memory per server: ready time, RSS idle and after the measurements."""
    lines = [
        "| server | ready in s | RSS idle MB | RSS after the run MB |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        if "ready" in r:
            lines.append(
                f"| {name} | {r['ready']:.2f} | {r['rss_idle']:.0f} | {r['rss_after']:.0f} |"
            )
    return "\n".join(lines)


def measure(label: str, url: str, scripts: dict[str, Path], seconds: int) -> dict:
    results = {}
    for payload in PAYLOADS:
        for concurrency in CONCURRENCY:
            r = run_wrk(url, scripts[payload], concurrency, seconds)
            r["rows_per_s"] = 0.0 if r["non2xx"] else r["rps"] * ROWS[payload]
            results[(payload, concurrency)] = r
            print(
                f"  {label}: {payload}, concurrency {concurrency}: {r['rps']:.0f} req/s, "
                f"p99 {r['p99']:.2f} ms, non-2xx {r['non2xx']}",
                flush=True,
            )
    return results


def mlserver_venv(workdir: Path) -> Path:
    venv = workdir / "mlserver-venv"
    if not (venv / "bin" / "mlserver").exists():
        print(f"installing {' '.join(MLSERVER_PACKAGES)} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *MLSERVER_PACKAGES], check=True)
    return venv


def start_mlserver(venv: Path, workdir: Path, workers: int) -> tuple[subprocess.Popen, int, float]:
    model_dir = workdir / f"mlserver-model-pw{workers}"
    model_dir.mkdir(exist_ok=True)
    shutil.copy("models/fp64.joblib", model_dir / "fp64.joblib")
    port = free_port()
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "fp64",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./fp64.joblib"},
            }
        )
    )
    (model_dir / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": workers,
            }
        )
    )
    # its logs are dropped: it writes a traceback with the whole body for each binary request
    proc = subprocess.Popen(
        [str(venv / "bin" / "mlserver"), "start", str(model_dir)],
        cwd=model_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ready = wait_ready(f"http://127.0.0.1:{port}/v2/models/fp64/ready", proc)
    return proc, port, ready


def batch_rows_per_s(workdir: Path, X: np.ndarray, n_rows: int = 1_000_000) -> tuple[float, float]:
    csv = workdir / "rows.csv"
    if not csv.exists():
        big = np.resize(X, (n_rows, X.shape[1]))
        with open(csv, "w") as fh:
            fh.write(",".join(FEATURE_NAMES) + "\n")
            fh.writelines(",".join(map(repr, row)) + "\n" for row in big.tolist())
    times = []
    for _ in range(3):
        start = time.perf_counter()
        with open(csv) as src:
            subprocess.run(
                [sys.executable, "-m", "quantpipe.batch", "--model", "q8", "-q"],
                stdin=src,
                stdout=subprocess.DEVNULL,
                check=True,
            )
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return n_rows / median, csv.stat().st_size / 1e6


def table(results: dict[str, dict]) -> str:
    lines = [
        "| server | payload | concurrency | req/s | rows/s | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, cells in results.items():
        for payload in PAYLOADS:
            for c in CONCURRENCY:
                r = cells[(payload, c)]
                if r["non2xx"]:
                    lines.append(
                        f"| {name} | {payload} | {c} | rejected: {r['non2xx']} non-2xx "
                        "| 0 | — | — |"
                    )
                else:
                    lines.append(
                        f"| {name} | {payload} | {c} | {r['rps']:,.0f} | "
                        f"{r['rows_per_s']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} |"
                    )
    return "\n".join(lines)


def comparison(results: dict[str, dict]) -> str:
    """Per cell: each side's best rows/s (and that setting's p99), and each side's lowest p99
    whichever setting gave it (with its name), since the issue compares best against best."""
    ours = [n for n in results if n.startswith("quantpipe")]  # not the baseline
    theirs = [n for n in results if n.startswith("MLServer")]
    lines = [
        "| payload | concurrency | rows/s: quantpipe / MLServer | ratio | p99 ms: quantpipe / "
        "MLServer | lowest p99 ms: quantpipe / MLServer |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for payload in PAYLOADS:
        for c in CONCURRENCY:
            a = max((results[n][(payload, c)] for n in ours), key=lambda r: r["rows_per_s"])
            b = max((results[n][(payload, c)] for n in theirs), key=lambda r: r["rows_per_s"])
            lowest = f"{lowest_p99(results, ours, payload, c)} / "
            if b["rows_per_s"] == 0:
                lines.append(
                    f"| {payload} | {c} | {a['rows_per_s']:,.0f} / rejected | — | "
                    f"{a['p99']:.2f} / — | {lowest}— |"
                )
            else:
                lines.append(
                    f"| {payload} | {c} | {a['rows_per_s']:,.0f} / {b['rows_per_s']:,.0f} | "
                    f"{a['rows_per_s'] / b['rows_per_s']:.2f}x | {a['p99']:.2f} / {b['p99']:.2f} | "
                    f"{lowest}{lowest_p99(results, theirs, payload, c)} |"
                )
    return "\n".join(lines)


def lowest_p99(results: dict[str, dict], names: list[str], payload: str, c: int) -> str:
    """The lowest p99 among the settings ``names`` that answered the cell, and whose it is."""
    answered = [n for n in names if not results[n][(payload, c)]["non2xx"]]
    if not answered:
        return "—"
    best = min(answered, key=lambda n: results[n][(payload, c)]["p99"])
    return f"{results[best][(payload, c)]['p99']:.2f} ({best.split()[-1]})"


def floor_comparison(results: dict[str, dict]) -> str:
    """quantpipe's best req/s per cell as a share of the bare framework's."""
    ours = [n for n in results if n.startswith("quantpipe")]
    lines = [
        "| payload | concurrency | req/s: quantpipe / bare Starlette | share of the floor |",
        "| --- | ---: | ---: | ---: |",
    ]
    for payload in PAYLOADS:
        for c in CONCURRENCY:
            a = max(results[n][(payload, c)]["rps"] for n in ours)
            b = results["floor"][(payload, c)]["rps"]
            lines.append(f"| {payload} | {c} | {a:,.0f} / {b:,.0f} | {a / b:.0%} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=10, help="wrk duration of each measurement")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/quantpipe-bench"))
    p.add_argument("--mlserver-venv", type=Path, help="an existing venv with MLServer 1.7")
    p.add_argument("--skip-mlserver", action="store_true")
    p.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of another revision (dvc repro run in it) to measure in the same run",
    )
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    args.workdir.mkdir(parents=True, exist_ok=True)
    test = load_dataset("data/split/test.npz").X
    X = test[:1000]
    results: dict[str, dict] = {}
    footprints: dict[str, dict] = {}

    servers = [("quantpipe", None)]
    if args.baseline is not None:  # another checkout of quantpipe, measured in the same run
        servers.append((f"baseline {args.baseline.name}", args.baseline.resolve()))
    for workers, (name, checkout) in itertools.product((1, 2), servers):
        label = f"{name} w{workers}"
        proc, port, ready = start_quantpipe(workers, checkout)
        try:
            print(f"{label} ready in {ready:.1f} s", flush=True)
            idle = tree_rss(proc.pid)
            scripts = write_bodies(args.workdir, X, "input-0")
            url = f"http://127.0.0.1:{port}/v2/models/fp64/infer"
            results[label] = measure(label, url, scripts, args.seconds)
            footprints[label] = {"ready": ready, "rss_idle": idle, "rss_after": tree_rss(proc.pid)}
        finally:
            stop(proc)

    proc, port, ready = start_floor()
    try:
        print(f"floor (bare Starlette) ready in {ready:.1f} s", flush=True)
        scripts = write_bodies(args.workdir, X, "input-0")
        url = f"http://127.0.0.1:{port}/v2/models/fp64/infer"
        results["floor"] = measure("floor", url, scripts, args.seconds)
    finally:
        stop(proc)

    if not args.skip_mlserver:
        venv = args.mlserver_venv or mlserver_venv(args.workdir)
        scripts = write_bodies(args.workdir, X, "predict")
        for workers in (0, 1, 2):
            label = f"MLServer pw{workers}"
            proc, port, ready = start_mlserver(venv, args.workdir, workers)
            try:
                print(f"{label} (parallel_workers={workers}) ready in {ready:.1f} s", flush=True)
                idle = tree_rss(proc.pid)
                url = f"http://127.0.0.1:{port}/v2/models/fp64/infer"
                results[label] = measure(label, url, scripts, args.seconds)
                footprints[label] = {
                    "ready": ready,
                    "rss_idle": idle,
                    "rss_after": tree_rss(proc.pid),
                }
            finally:
                stop(proc)

    rows_per_s, mb = batch_rows_per_s(args.workdir, test)
    print(f"\n## Serving ({args.seconds} s per cell, wrk on loopback, {os.cpu_count()} cores)\n")
    print(table(results))
    if any(n.startswith("MLServer") for n in results):
        print("\n## quantpipe's best against MLServer's best, per cell\n")
        print(comparison(results))
    print("\n## quantpipe's best against the framework's floor, per cell\n")
    print(floor_comparison(results))
    print("\n## Start-up and memory (RSS of the server and its workers)\n")
    print(footprint(footprints))
    print(
        f"\nbatch: quantpipe predict --model q8 on 1,000,000 CSV rows ({mb:.0f} MB): "
        f"{rows_per_s:,.0f} rows/s (median of 3)"
    )


if __name__ == "__main__":
    main()
