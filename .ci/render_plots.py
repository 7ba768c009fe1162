"""Render the pipeline's `dvc plots` in headless Chromium, offline, and check every plot drew.

Usage: python .ci/render_plots.py OUT_DIR [--chromium PATH]

Runs ``dvc plots show`` as a user would (its page is the plots_page stage's, with Vega
inline: .dvc/config's ``plots.html_template``), checks that the page loads nothing
(no ``src=`` or ``href=`` on a script, link, image or frame), loads it in Debian's Chromium
with every host name unresolvable, and checks the rendered DOM: one drawn canvas or SVG per plot
and no Vega error. Writes OUT_DIR/plots.png, a screenshot to look at. Exits 1 with one
line if a plot did not render.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from quantpipe.plotpage import remote_loads, without_script_code

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
    # offline: no host name resolves, so a page that fetched anything would not draw
    "--host-resolver-rules=MAP * ~NOTFOUND",
]


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
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = p.parse_args()

    html_dir = args.out / "html"
    args.out.mkdir(parents=True, exist_ok=True)  # dvc creates only the last directory
    subprocess.run(
        ["dvc", "plots", "show", "-o", str(html_dir)], check=True, stdout=subprocess.DEVNULL
    )
    page = html_dir / "index.html"
    text = page.read_text(encoding="utf-8")
    remote = remote_loads(text)
    if remote:
        sys.exit(f"render check FAILED: the page loads from the network: {remote[:3]}")
    plots = text.count("vegaEmbed(")

    dom = chromium(args.chromium, page.as_uri(), "--dump-dom")
    # drawn: Vega's canvas, or its SVG root (Vega-Embed 7 draws SVG by default)
    canvases = dom.count("<canvas") + len(re.findall(r'<svg\b[^>]*class="marks"', dom))
    # Vega's errors are text in the page; the scripts (Vega's own code among them) are not
    errors = re.findall(r"(?i)(error[^<]{0,120})", without_script_code(dom))
    screenshot = args.out / "plots.png"
    chromium(args.chromium, page.as_uri(), f"--screenshot={screenshot}", "--window-size=1300,3200")
    if plots == 0 or canvases != plots or errors:
        sys.exit(f"render check FAILED: {plots} plots, {canvases} drawn; errors: {errors[:3]}")
    print(f"render check passed: {plots} plots drawn by Chromium, offline; screenshot {screenshot}")


if __name__ == "__main__":
    main()
