"""The README shows what the pipeline wrote, and its quick start is what CI runs."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
#: Every markdown document a reader opens: the README, the contributors' guide, docs/.
DOCUMENTS = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md"]
DOCUMENTS += sorted((REPO_ROOT / "docs").glob("*.md"))


def _block(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, f"{start} … {end} not found"
    return match.group(1)


def test_readme_table_is_the_committed_metrics():
    """The README's table is metrics/compare.md, as the evaluate stage writes it from the
    per-variant metrics git keeps (compare.md itself is DVC-cached, not in a fresh clone)."""
    import json

    from quantpipe.evaluation import expected_variants
    from quantpipe.metrics import markdown_table
    from quantpipe.params import load_params

    variants = ["fp64", *expected_variants(load_params(REPO_ROOT / "params.yaml"))]
    eval_dir = REPO_ROOT / "metrics" / "eval"
    reports = {
        v: json.loads((eval_dir / f"{v}.json").read_text(encoding="utf-8")) for v in variants
    }
    table = _block(README, "<!-- compare:start -->", "<!-- compare:end -->")
    assert table == markdown_table(reports)
    built = REPO_ROOT / "metrics" / "compare.md"
    if built.is_file():  # after dvc repro or dvc pull
        assert built.read_text(encoding="utf-8") == table


def test_quick_start_is_two_commands_and_ci_runs_both():
    quick = _block(README, "## Quick start", "Then:")
    commands = _block(quick, "```bash", "```").strip().splitlines()
    assert len(commands) == 2
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        assert command in ci, f"CI does not run the README's command: {command}"


def test_readme_is_a_landing_page_of_at_most_10_kb():
    assert len(README.encode("utf-8")) <= 10_000


def test_every_relative_link_in_the_documents_resolves():
    broken = []
    for doc in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO_ROOT)}: {target}")
    assert not broken


def _github_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a document's headings: lower case, punctuation dropped,
    spaces as hyphens, a repeated heading numbered ``-1``, ``-2``, ..."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def test_every_link_to_a_heading_names_one():
    broken = []
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text):
            if "://" in target or not (target == "" or target.endswith(".md")):
                continue
            linked = text if target == "" else (doc.parent / target).read_text(encoding="utf-8")
            if anchor not in _github_anchors(linked):
                broken.append(f"{doc.relative_to(REPO_ROOT)}: {target}#{anchor}")
    assert not broken


def _table_rows(text: str) -> list[list[str]]:
    rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def _leaves(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_leaves(value, name + "."))
        else:
            out[name] = value
    return out


def test_the_parameter_table_is_params_yaml():
    """docs/parameters.md lists every key of params.yaml once, with its default value."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    gate = params.pop("gate")
    mnist_gate = params["mnist"]["gate"]
    mnist_budgets = {k: mnist_gate.pop(k) for k in list(mnist_gate) if k.startswith("q")}
    expected = _leaves(params)
    limits = {limit for budget in gate.values() for limit in budget}
    mnist_limits = {limit for budget in mnist_budgets.values() for limit in budget}
    documented: dict[str, str] = {}
    for row in _table_rows((REPO_ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")):
        names = re.findall(r"`([^`]+)`", row[0])
        first = names[0]
        keys = [first] + [first.rsplit(".", 1)[0] + n for n in names[1:] if n.startswith(".")]
        defaults = re.findall(r"`([^`]+)`", row[1]) or [row[1]] * len(keys)
        for key, default in zip(keys, defaults, strict=False):
            documented[key] = default
    gate_keys = {k.rsplit(".", 1)[1] for k in documented if k.startswith("gate.<variant>.")}
    assert gate_keys == {"max_r2_drop", "max_pred_rmse", "max_pred_p99"} >= limits
    mnist_keys = {k.rsplit(".", 1)[1] for k in documented if k.startswith("mnist.gate.<variant>.")}
    assert mnist_keys == {"max_accuracy_drop", "min_agreement"} >= mnist_limits
    documented = {
        k: v for k, v in documented.items() if not k.startswith(("gate.", "mnist.gate.<variant>."))
    }
    assert set(documented) == set(expected)
    for key, value in expected.items():
        assert yaml.safe_load(documented[key]) == value, key


#: Templates DVC ships (dvc-render); any other must be a file in .dvc/plots/.
DVC_TEMPLATES = {
    "simple",
    "linear",
    "confusion",
    "confusion_normalized",
    "scatter",
    "scatter_jitter",
    "smooth",
    "bar_horizontal",
    "bar_horizontal_sorted",
}


def test_every_plot_template_any_revision_names_is_here():
    """`dvc plots diff REV` renders REV's plots with the templates of this workspace: a
    template removed here breaks the comparison with every revision that still names it
    (top-level plots, or a stage's)."""
    import subprocess

    revs = subprocess.run(
        ["git", "log", "--format=%H", "-n", "200", "--", "dvc.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    texts = [(REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8")]
    for rev in revs:
        shown = subprocess.run(
            ["git", "show", f"{rev}:dvc.yaml"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:
            texts.append(shown.stdout)
    named = set()
    for text in texts:
        pipeline = yaml.safe_load(text)
        plots = list(pipeline.get("plots") or [])
        for stage in (pipeline.get("stages") or {}).values():
            plots += stage.get("plots") or []
        for plot in plots:
            for spec in plot.values() if isinstance(plot, dict) else []:
                if isinstance(spec, dict) and "template" in spec:
                    named.add(spec["template"])
    here = {p.stem for p in (REPO_ROOT / ".dvc" / "plots").glob("*.json")}
    assert named - DVC_TEMPLATES - here == set()


def test_the_readme_pictures_are_drawn_from_the_current_data():
    """docs/images/ holds `dvc plots` rendered by `.ci/plot_images.py --readme`, with the
    sha256 of what each was drawn from (data, template, title): redraw them when it changes."""
    import json

    from quantpipe.plotpage import plot_fingerprint

    images = REPO_ROOT / "docs" / "images"
    sources = json.loads((images / "sources.json").read_text(encoding="utf-8"))
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert sorted(sources) == sorted(p.name for p in images.iterdir() if p.suffix != ".json")
    for name, source in sources.items():
        assert f"](docs/images/{name})" in readme, name
        assert plot_fingerprint(REPO_ROOT, source["source"]) == source["sha256"], (
            f"{source['source']} (its data, template or title) changed since "
            f"docs/images/{name} was drawn: "
            "run python .ci/plot_images.py --readme"
        )
