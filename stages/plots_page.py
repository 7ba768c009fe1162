"""Stage ``plots_page``: the page ``dvc plots show`` fills, with Vega inline.

Writes ``data/plots_page.html`` (``.dvc/config`` names it as DVC's ``plots.html_template``):
Vega, Vega-Lite 5 and Vega-Embed bundled into one inline script by ``vl-convert-python``
(the Vega project's converter, pinned in ``requirements.txt``), so that the plots draw
offline (:mod:`quantpipe.plotpage`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantpipe import cli, paths
from quantpipe.errors import SetupError
from quantpipe.io import write_text
from quantpipe.params import load_params
from quantpipe.plotpage import VEGA_LITE, page

log = logging.getLogger("quantpipe.plots_page")

#: The bundle's own code: the libraries as globals, for DVC's plot elements to call.
GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"


def _body(args: argparse.Namespace) -> None:
    load_params(args.params)
    try:
        import vl_convert  # the pipeline's environment only (not the server's)
    except ModuleNotFoundError:
        raise SetupError(
            "vl-convert-python is not installed; pip install -r requirements.txt"
        ) from None
    bundle = vl_convert.javascript_bundle(GLOBALS, vl_version=VEGA_LITE)
    about = (
        f"Vega {vl_convert.get_vega_version()}, Vega-Lite {VEGA_LITE}, "
        f"Vega-Embed {vl_convert.get_vega_embed_version()}, bundled by vl-convert-python"
    )
    try:
        text = page(bundle, about)
    except ValueError as exc:
        raise SetupError(f"vl-convert-python's bundle cannot be inlined: {exc}") from None
    write_text(args.out, text)
    log.info("%s; wrote %s (%d kB)", about, args.out, args.out.stat().st_size // 1000)


def main(argv: Sequence[str] | None = None, prog: str = "python -m stages.plots_page") -> int:
    """Run the stage; returns the exit status."""
    p = cli.parser(prog, __doc__.split("\n\n")[0])
    p.add_argument("--params", type=Path, default=paths.PARAMS, help="params file")
    p.add_argument("--out", type=Path, default=paths.PLOTS_PAGE, help="the page")
    return cli.run(_body, p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
