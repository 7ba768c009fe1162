"""The page `dvc plots show` fills: Vega inline, DVC's placeholders kept, nothing remote."""

from __future__ import annotations

import pytest

from quantpipe.plotpage import PLOTS_PLACEHOLDER, REFRESH_PLACEHOLDER, page, remote_loads
from tests.conftest import REPO_ROOT

BUNDLE = "window.vegaEmbed = function (el, spec) { return {el, spec}; };"


def test_the_page_inlines_the_bundle_and_keeps_dvcs_placeholders():
    text = page(BUNDLE, "Vega 6, Vega-Lite 5.21")
    assert f"<script>\n{BUNDLE}\n    </script>" in text
    assert text.count(PLOTS_PLACEHOLDER) == 1
    assert text.count(REFRESH_PLACEHOLDER) == 1
    assert "{scripts}" not in text  # where DVC would put its CDN script tags
    assert "<!-- Vega 6, Vega-Lite 5.21: inline" in text
    assert remote_loads(text) == []


def test_nothing_in_the_bundle_is_replaced():
    bundle = "const a = {x: {y: 1}}; const t = `@ABOUT@ {{ }}`;"
    assert f"<script>\n{bundle}\n" in page(bundle, "v")


@pytest.mark.parametrize(
    ("bundle", "about", "message"),
    [
        ("s = '</script>';", "v", "contains '</script', which would end its script element"),
        ("s = '</SCRIPT >';", "v", "contains '</script'"),
        ("s = '{plot_divs}';", "v", r"contains DVC's placeholder \{plot_divs\}"),
        ("s = '{scripts}';", "v", r"contains DVC's placeholder \{scripts\}"),
        (BUNDLE, "a -- b", "about must be one line without '--'"),
        (BUNDLE, "a\nb", "about must be one line"),
    ],
)
def test_what_would_break_the_page_is_refused(bundle, about, message):
    with pytest.raises(ValueError, match=message):
        page(bundle, about)


def test_remote_loads_are_found_outside_scripts_code():
    page_html = (
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>'
        "<LINK rel=stylesheet href='x.css'>"
        '<script>var t = `<img src="${u}">`;</script>'  # code, not markup
        "<SCRIPT type=module>let src = 1;</SCRIPT >"
        '<img  src="a.png">'
    )
    assert remote_loads(page_html) == ["<script src=", "<LINK rel=stylesheet href=", "<img  src="]


def test_dvc_is_configured_to_fill_the_page_the_stage_writes():
    config = (REPO_ROOT / ".dvc" / "config").read_text()
    assert "[plots]\n    html_template = ../data/plots_page.html\n" in config


def test_a_plot_no_stage_declares_has_no_fingerprint():
    from quantpipe.plotpage import plot_fingerprint

    assert len(plot_fingerprint(REPO_ROOT, "metrics/plots/fidelity.json")) == 64
    with pytest.raises(KeyError, match=r"no stage of dvc\.yaml declares the plot metrics/none"):
        plot_fingerprint(REPO_ROOT, "metrics/none.json")
