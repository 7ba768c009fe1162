"""This revision's server against another checkout's, in alternating rounds.

One cell of ``serve_bench.py`` moves by a few percent from one run to the next on a 2-core
machine, more than a small change costs. This runs the same wrk cells on this revision's
``quantpipe serve`` and on a baseline checkout's (its own code and models), one server after
the other, ``--rounds`` times, and prints the median requests/s of each and their ratio;
with ``--floor``, the framework's floor (``serve_bench.FLOOR_APP``) too, in the same rounds,
and this revision's share of it.

Run from the repository root after ``dvc repro`` (and ``dvc repro`` in the baseline)::

    python benchmarks/serve_ab.py --baseline ../quantpipe-old [--rounds 3] [--seconds 5] [--floor]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from serve_bench import run_wrk, start_floor, start_quantpipe, stop, write_bodies

from quantpipe.data import load_dataset

CELLS = [("1-row JSON", 1), ("1-row JSON", 8), ("1000-row JSON", 1), ("1000-row binary", 8)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5, help="wrk duration of each cell")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/quantpipe-bench"))
    p.add_argument("--floor", action="store_true", help="measure the framework's floor too")
    args = p.parse_args()
    if args.floor and args.workers != 1:
        p.error("--floor: the floor is one process, so compare it with --workers 1")
    args.workdir.mkdir(parents=True, exist_ok=True)
    scripts = write_bodies(args.workdir, load_dataset("data/split/test.npz").X[:1000], "input-0")
    rps: dict[tuple[str, int, str], list[float]] = {}
    for _ in range(args.rounds):
        servers = [("this", None), ("baseline", args.baseline.resolve())]
        for name, checkout in servers + ([("floor", None)] if args.floor else []):
            if name == "floor":
                proc, port, _ = start_floor()
            else:
                proc, port, _ = start_quantpipe(args.workers, checkout)
            try:
                url = f"http://127.0.0.1:{port}/v2/models/fp64/infer"
                for payload, c in CELLS:
                    r = run_wrk(url, scripts[payload], c, args.seconds)
                    rps.setdefault((payload, c, name), []).append(r["rps"])
            finally:
                stop(proc)
    print(f"{args.workers} worker(s), {args.rounds} rounds of {args.seconds} s, medians\n")
    floor_head = " floor req/s | this / floor |" if args.floor else ""
    print(f"| payload | concurrency | this req/s | baseline req/s | ratio |{floor_head}")
    print("| --- | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if args.floor else ""))
    for payload, c in CELLS:
        a = statistics.median(rps[(payload, c, "this")])
        b = statistics.median(rps[(payload, c, "baseline")])
        row = f"| {payload} | {c} | {a:,.0f} | {b:,.0f} | {a / b:.3f} |"
        if args.floor:
            f = statistics.median(rps[(payload, c, "floor")])
            row += f" {f:,.0f} | {a / f:.0%} |"
        print(row)


if __name__ == "__main__":
    main()
