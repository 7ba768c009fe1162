"""Render the pipeline's plots as images, without a browser (vl-convert-python).

Usage:
    python .ci/plot_images.py OUT_DIR      # every plot: OUT_DIR/<name>.png and .svg, index.md
    python .ci/plot_images.py --readme     # the README's pictures: docs/images/, sources.json

Reads the plots as ``dvc plots show --json`` gives them (each Vega-Lite spec with its data
filled in), and renders each with the Vega project's converter: SVG, and PNG at twice the
size (the README's PNG at its size). ``index.md`` shows every image under its title, with
paths relative to OUT_DIR (CI puts it in the pull-request report). Images are not pipeline
outputs: fonts differ between machines, so their bytes may too. ``--readme`` also writes
``docs/images/sources.json``, the sha256 of the data each picture was drawn from; a test
fails when the data changes and the pictures were not redrawn. Exits 1 with one line if a
plot cannot be rendered.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from quantpipe.plotpage import VEGA_LITE, plot_fingerprint

ROOT = Path(__file__).resolve().parents[1]
#: The README's pictures: plot id (its data file) to image format. The scatter plot is a
#: PNG (as SVG it is a megabyte of circles); the others are small as SVG.
README_IMAGES = {
    "metrics/plots/delta.csv": "png",
    "metrics/plots/fidelity.json": "svg",
    "metrics/mnist/plots/accuracy_by_width.json": "svg",
}
README_DIR = ROOT / "docs" / "images"


def image_name(plot_id: str) -> str:
    """``metrics/mnist/plots/confusion.csv`` -> ``mnist-confusion``."""
    parts = [p for p in Path(plot_id).with_suffix("").parts if p not in ("metrics", "plots")]
    return "-".join(parts)


def shown_plots() -> dict[str, dict]:
    """Each plot of ``dvc plots show --json``: id to its filled Vega-Lite spec."""
    result = subprocess.run(
        ["dvc", "plots", "show", "--json"], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        sys.exit(f"error: dvc plots show failed: {last}")
    plots = {}
    for plot_id, renderers in json.loads(result.stdout)["data"].items():
        vega = [r for r in renderers if r.get("type") == "vega"]
        if len(vega) != 1:
            sys.exit(f"error: plot {plot_id}: expected one Vega-Lite spec, got {len(vega)}")
        plots[plot_id] = vega[0]["content"]
    if not plots:
        sys.exit("error: dvc plots show listed no plots: run dvc repro first")
    return plots


def render(spec: dict, fmt: str, scale: float = 2) -> bytes:
    """One plot as SVG, or PNG at ``scale`` times its size, bytes."""
    import vl_convert

    if fmt == "svg":
        return vl_convert.vegalite_to_svg(spec, vl_version=VEGA_LITE).encode()
    return vl_convert.vegalite_to_png(spec, vl_version=VEGA_LITE, scale=scale)


def write_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for plot_id, spec in shown_plots().items():
        name = image_name(plot_id)
        for fmt in ("svg", "png"):
            data = render(spec, fmt)
            if not data:
                sys.exit(f"error: plot {plot_id}: the {fmt} is empty")
            (out / f"{name}.{fmt}").write_bytes(data)
        title = spec.get("title") or plot_id
        if isinstance(title, dict):  # DVC's built-in templates give {"text": ..., ...}
            title = title.get("text") or plot_id
        lines += [f"**{title}**", "", f"![{plot_id}]({name}.png)", ""]
    (out / "index.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"{len(lines) // 4} plots rendered as SVG and PNG into {out}")


def write_readme() -> None:
    plots = shown_plots()
    README_DIR.mkdir(parents=True, exist_ok=True)
    sources = {}
    for plot_id, fmt in README_IMAGES.items():
        if plot_id not in plots:
            sys.exit(f"error: dvc plots show has no plot {plot_id}")
        path = README_DIR / f"{image_name(plot_id)}.{fmt}"
        path.write_bytes(render(plots[plot_id], fmt, scale=1))  # small enough for git
        sources[path.name] = {"source": plot_id, "sha256": plot_fingerprint(ROOT, plot_id)}
    text = json.dumps(sources, indent=2, sort_keys=True) + "\n"
    (README_DIR / "sources.json").write_text(text, encoding="utf-8")
    print(f"{len(sources)} README pictures written to {README_DIR.relative_to(ROOT)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("out", nargs="?", type=Path, help="where every plot's images go")
    group.add_argument("--readme", action="store_true", help="redraw docs/images/")
    args = p.parse_args()
    try:
        import vl_convert  # noqa: F401
    except ModuleNotFoundError:
        sys.exit("error: vl-convert-python is not installed; pip install -r requirements.txt")
    if args.readme:
        write_readme()
    else:
        write_all(args.out)


if __name__ == "__main__":
    main()
