"""The page ``dvc plots show`` and ``dvc plots diff`` fill: Vega inline, nothing from a CDN.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from ``cdn.jsdelivr.net``: offline (on
these machines, behind a firewall, on a plane) every plot is blank. ``.dvc/config`` points
DVC's ``plots.html_template`` at the page this module writes (the ``plots_page`` stage),
which carries the three libraries in one inline script, so that the page loads nothing from
the network. DVC fills ``{plot_divs}`` (and ``{refresh_tag}``); the page has no ``{scripts}``,
the placeholder where DVC would put its CDN tags.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

#: The Vega-Lite version of the templates in .dvc/plots/ (their ``$schema`` is v5), for the
#: page's bundle and for images drawn without a browser.
VEGA_LITE = "5.21"

#: DVC's placeholders (dvc_render.html.HTML): the plots, and the optional refresh tag.
PLOTS_PLACEHOLDER = "{plot_divs}"
REFRESH_PLACEHOLDER = "{refresh_tag}"
_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")
#: An element that would make the browser fetch something: a script, stylesheet, image, frame.
REMOTE_LOAD = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=", re.IGNORECASE)
_SCRIPT_BODY = re.compile(r"(<script\b[^>]*>).*?</script\s*>", re.IGNORECASE | re.DOTALL)

_PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {refresh_tag}
    <title>quantpipe: dvc plots</title>
    <!-- @ABOUT@: inline, so that this page loads nothing from the network -->
    <script>
@BUNDLE@
    </script>
    <style>
        body { font-family: sans-serif; margin: 16px; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page(bundle: str, about: str) -> str:
    """The HTML template, with ``bundle`` as its one inline script.

    Parameters
    ----------
    bundle : str
        JavaScript that defines ``vegaEmbed`` (and ``vega``, ``vegaLite``) on ``window``,
        as a classic script: DVC's plot elements call ``vegaEmbed`` as soon as they parse.
    about : str
        One line naming the libraries and their versions, for the page's comment.

    Returns
    -------
    str
        A template for DVC's ``plots.html_template``.

    Raises
    ------
    ValueError
        If ``bundle`` would end the script element early or holds one of DVC's
        placeholders (DVC would replace it inside the code), or ``about`` would end the
        comment.
    """
    if re.search(r"</script", bundle, re.IGNORECASE):
        raise ValueError("the bundle contains '</script', which would end its script element")
    for placeholder in _PLACEHOLDERS:
        if placeholder in bundle:
            raise ValueError(f"the bundle contains DVC's placeholder {placeholder}")
    if "--" in about or "\n" in about:
        raise ValueError("about must be one line without '--'")
    # the bundle goes in last, so that nothing in it is replaced
    return _PAGE.replace("@ABOUT@", about).replace("@BUNDLE@", bundle)


def without_script_code(html: str) -> str:
    """``html`` with the text inside every script element removed (the tags kept)."""
    return _SCRIPT_BODY.sub(r"\1</script>", html)


def remote_loads(html: str) -> list[str]:
    """The elements of ``html`` that would load something, scripts' code aside.

    Parameters
    ----------
    html : str
        A page (DVC's, filled).

    Returns
    -------
    list of str
        The start of each such element (``<script src=``, ``<link href=`` …); empty when the
        page loads nothing. Text inside script elements (Vega's own code builds ``<img>``
        strings for tooltips) is not markup and is not searched.
    """
    return REMOTE_LOAD.findall(without_script_code(html))


def plot_fingerprint(root: Path, plot_id: str) -> str:
    """What a drawing of the stage plot ``plot_id`` depends on, as one sha256.

    The data file's bytes, the template's (``.dvc/plots/<template>.json``; DVC's built-in
    templates by name), and the plot's properties in ``dvc.yaml`` (title, axes), so that a
    picture drawn from them is stale when any of the three changes.

    Raises
    ------
    KeyError
        If no stage of ``dvc.yaml`` declares ``plot_id`` as a plot.
    """
    from quantpipe.lockfile import pipeline_stages

    declared = [
        entry[plot_id] or {}
        for stage in pipeline_stages(root / "dvc.yaml").values()
        for entry in stage.get("plots") or []
        if isinstance(entry, dict) and plot_id in entry
    ]
    if not declared:
        raise KeyError(f"no stage of dvc.yaml declares the plot {plot_id}")
    props = declared[0]
    template = root / ".dvc" / "plots" / f"{props.get('template', 'linear')}.json"
    digest = hashlib.sha256()
    digest.update((root / plot_id).read_bytes())
    digest.update(template.read_bytes() if template.is_file() else template.stem.encode())
    digest.update(json.dumps(props, sort_keys=True).encode())
    return digest.hexdigest()
