"""dvc.lock for CI's steps (quantpipe.lockfile): compare it, check outputs against it.

Usage, from the repository root:
    python .ci/lock.py comparable [LOCK]   # the lock without machine-dependent hashes
    python .ci/lock.py verify PREFIX       # exit 1 unless the outputs under PREFIX are the
                                           # files dvc.lock records (by md5)
    python .ci/lock.py digest PREFIX       # one name for those outputs (the image's label)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quantpipe.lockfile import comparable_lock, outputs_digest, recorded_outputs, verify_outputs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    comparable = sub.add_parser("comparable", help="print the lock, timings' hashes left out")
    comparable.add_argument("lock", nargs="?", default="dvc.lock")
    for name, help_text in (("verify", "check outputs by hash"), ("digest", "name outputs")):
        sub.add_parser(name, help=help_text).add_argument("prefix")
    args = p.parse_args()
    lock = Path(getattr(args, "lock", "dvc.lock"))
    try:
        text = lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if not text or not Path("dvc.yaml").is_file():
        sys.exit(f"error: no {lock} and dvc.yaml here: run from the repository's root")
    if args.command == "comparable":
        sys.stdout.write(comparable_lock(text, Path("dvc.yaml")))
        return 0
    if args.command == "digest":
        try:
            print(outputs_digest(text, args.prefix))
        except ValueError as exc:
            sys.exit(f"error: {exc}")
        return 0
    problems = verify_outputs(text, Path("."), Path(".dvc/cache"), args.prefix)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if problems:
        return 1
    count = len(recorded_outputs(text, args.prefix))
    print(f"{args.prefix}: the {count} outputs dvc.lock records, byte for byte")
    return 0


if __name__ == "__main__":
    sys.exit(main())
