"""Render the pipeline's `dvc plots` in headless Chromium and check that every plot drew.

Usage: python .ci/render_plots.py OUT_DIR [--vega-dir DIR] [--chromium PATH]

Runs ``dvc plots show``, points its page at local copies of Vega, Vega-Lite and
Vega-Embed (the page loads them from a CDN, which these machines cannot reach; npm can
install them), loads it in Debian's Chromium, and checks the rendered DOM: one drawn
canvas per plot and no Vega error. Writes OUT_DIR/plots.png, a screenshot to look at.
Exits 1 with one line if a plot did not render.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

VEGA_PACKAGES = {
    "vega": "vega@5.33.1",
    "vega-lite": "vega-lite@5.23.0",
    "vega-embed": "vega-embed@6.29.0",
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=20000",
]


def vega_scripts(vega_dir: Path) -> dict[str, Path]:
    """The three builds, installing them with npm into ``vega_dir`` if missing."""
    builds = {
        name: vega_dir / "node_modules" / name / "build" / f"{name}.min.js"
        for name in VEGA_PACKAGES
    }
    if not all(path.is_file() for path in builds.values()):
        vega_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(vega_dir),
                *VEGA_PACKAGES.values(),
            ],
            check=True,
        )
    return builds


def chromium(binary: str, url: str, *args: str) -> str:
    result = subprocess.run(
        [binary, *CHROMIUM_FLAGS, *args, url], capture_output=True, text=True, timeout=180
    )
    if result.returncode != 0:
        sys.exit(f"chromium failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return result.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--vega-dir", type=Path, default=Path("/tmp/quantpipe-vega"))
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = p.parse_args()

    html_dir = args.out / "html"
    args.out.mkdir(parents=True, exist_ok=True)  # dvc creates only the last directory
    subprocess.run(
        ["dvc", "plots", "show", "-o", str(html_dir)], check=True, stdout=subprocess.DEVNULL
    )
    page = html_dir / "index.html"
    text = page.read_text(encoding="utf-8")
    for name, build in vega_scripts(args.vega_dir).items():
        shutil.copy(build, html_dir / build.name)
        text, n = re.subn(
            rf'src="https://cdn\.jsdelivr\.net/npm/{name}@[\d.]+"', f'src="{build.name}"', text
        )
        if n != 1:
            sys.exit(f"render check FAILED: the page does not load {name} from the CDN as expected")
    # served from a CDN the scripts come as UTF-8; as local files they need the page to say so
    text = text.replace("<head>", '<head>\n    <meta charset="utf-8">', 1)
    page.write_text(text, encoding="utf-8")
    plots = text.count("vegaEmbed(")

    dom = chromium(args.chromium, page.as_uri(), "--dump-dom")
    canvases = dom.count("<canvas")
    errors = re.findall(r"(?i)(error[^<]{0,120})", dom)
    screenshot = args.out / "plots.png"
    chromium(args.chromium, page.as_uri(), f"--screenshot={screenshot}", "--window-size=1300,3200")
    if plots == 0 or canvases != plots or errors:
        sys.exit(f"render check FAILED: {plots} plots, {canvases} drawn; errors: {errors[:3]}")
    print(f"render check passed: {plots} plots drawn by Chromium; screenshot {screenshot}")


if __name__ == "__main__":
    main()
