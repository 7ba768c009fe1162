"""End to end: `dvc repro` in a fresh copy of the repository, on the real data.

The copy is a new git repository holding exactly the files git would hand a user on clone,
committed, so `git status` after `dvc repro` shows whether the committed `dvc.lock` and
metrics are what the committed code produces.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quantpipe.lockfile import comparable_lock, machine_dependent
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
CASTS = ("float32", "float16", "bfloat16")
VARIANTS = ("fp64", "q8", "q16", "q8i", *CASTS)


def _git(*args, cwd):
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _copy_repository(dest: Path) -> None:
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT)
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    _git("init", "-q", "-b", "main", cwd=dest)
    _git("add", "-A", cwd=dest)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy", cwd=dest)


class Repo:
    def __init__(self, path: Path, data_home: Path):
        self.path = path
        bindir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "QUANTPIPE_DATA": str(data_home),
            "DVC_NO_ANALYTICS": "1",
            "PYTHONPATH": str(path),
        }
        self.trace: ImportTrace | None = None  # the first `dvc repro`'s, in the fixture

    def dvc(self, *args, check=True):
        result = subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            pytest.fail(f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def changed_stages(self) -> set[str]:
        """The stages `dvc status` lists, from DVC's own API in this process (what the
        command prints with ``--json``, at a third of a process's cost)."""
        from dvc.repo import Repo as DvcRepo

        with contextlib.chdir(self.path), DvcRepo() as dvc:  # names relative to the cwd
            return set(dvc.status())

    def metrics(self, variant: str) -> dict:
        return json.loads((self.path / "metrics" / "eval" / f"{variant}.json").read_text())

    def set_params(self, edit) -> None:
        path = self.path / "params.yaml"
        params = yaml.safe_load(path.read_text())
        edit(params)
        path.write_text(yaml.safe_dump(params, sort_keys=False))


def _status(repo: Repo) -> str:
    """``git status --porcelain`` of every file but the timings ``dvc.yaml`` declares
    machine-dependent (``meta: machine_dependent``), and ``dvc.lock`` but for their hashes,
    as CI's checks see them."""
    dvcfile = repo.path / "dvc.yaml"
    timings = machine_dependent(dvcfile)
    assert timings == ["metrics/mnist/latency.json"]
    excluded = [f":(exclude){p}" for p in [*timings, "dvc.lock"]]
    status = _git("status", "--porcelain", "--", ".", *excluded, cwd=repo.path)
    committed = _git("show", "HEAD:dvc.lock", cwd=repo.path)
    built = (repo.path / "dvc.lock").read_text()
    if comparable_lock(committed, dvcfile) != comparable_lock(built, dvcfile):
        status += " M dvc.lock\n"
    return status


# Found on PYTHONPATH by every Python process run with ImportTrace.env: a stage's process
# (`python -m stages.…`) writes, as it exits, its command line and every module file it loaded.
TRACE_IMPORTS = """
import atexit, json, os, sys

def _record(out=os.environ["QUANTPIPE_LOADED"]):
    files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
    import tempfile  # after the list; a new file, whatever the pid

    fd, _ = tempfile.mkstemp(suffix=".json", dir=out)
    with open(fd, "w") as record:
        json.dump({"argv": sys.orig_argv[2:], "files": files}, record)

if sys.orig_argv[1:2] == ["-m"] and sys.orig_argv[2].startswith("stages."):
    atexit.register(_record)
"""


class ImportTrace:
    """The module files each stage process loads, as dvc (or a shell) runs it."""

    def __init__(self, directory: Path):
        (directory / "sitecustomize.py").write_text(TRACE_IMPORTS)
        self.records = directory / "loaded"
        self.records.mkdir()
        self.directory = directory

    def env(self, env: dict[str, str]) -> dict[str, str]:
        path = os.pathsep.join([str(self.directory), env["PYTHONPATH"]])
        return {**env, "PYTHONPATH": path, "QUANTPIPE_LOADED": str(self.records)}

    def loaded(self) -> dict[str, list[str]]:
        """Each traced stage command: the module files its process loaded."""
        loaded: dict[str, list[str]] = {}
        for record in sorted(self.records.glob("*.json")):
            process = json.loads(record.read_text())
            command = " ".join(["python", "-m", *process["argv"]])
            assert command not in loaded, f"{command} ran twice"
            loaded[command] = process["files"]
        return loaded


@pytest.fixture(scope="module")
def repo(tmp_path_factory, data_home):
    path = tmp_path_factory.mktemp("quantpipe")
    _copy_repository(path)
    repo = Repo(path, data_home)
    repo.trace = ImportTrace(tmp_path_factory.mktemp("trace"))
    plain_env = repo.env
    repo.env = repo.trace.env(plain_env)
    try:
        repo.dvc("repro")
    finally:
        repo.env = plain_env
    return repo


def test_reference_figures(repo):
    fp64 = repo.metrics("fp64")["accuracy"]
    assert round(fp64["r2"], 4) == 0.5758
    assert round(fp64["mse"], 4) == 0.5559
    q16, q8, q8i = repo.metrics("q16"), repo.metrics("q8"), repo.metrics("q8i")
    assert q16["fidelity"]["rmse"] <= 1e-3
    assert q8["fidelity"]["rmse"] <= 0.005
    assert abs(q8["accuracy"]["r2"] - fp64["r2"]) <= 0.002
    assert q8i["fidelity"]["p99_abs"] <= 0.1
    assert 0 < q8i["fidelity"]["saturated_rows"] < 10
    sizes = {v: repo.metrics(v)["size"]["param_bytes"] for v in VARIANTS}
    assert sizes["float32"] == 36
    assert sizes["float16"] == sizes["bfloat16"] == 18
    compare = json.loads((repo.path / "metrics" / "compare.json").read_text())
    assert set(compare) == set(VARIANTS) - {"fp64"}


def test_committed_lock_and_metrics_are_what_the_code_builds(repo):
    assert _status(repo) == ""
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout


def test_metrics_show_lists_every_variant(repo):
    shown = json.loads(repo.dvc("metrics", "show", "--json").stdout)
    files = shown[""]["data"]
    assert {f for f in files if not f.startswith("metrics/mnist/")} == {
        f"metrics/eval/{v}.json" for v in VARIANTS
    } | {"metrics/compare.json", "metrics/monitor/report.json"}
    assert {f for f in files if f.startswith("metrics/mnist/")} == {
        "metrics/mnist/eval/fp32.json",
        "metrics/mnist/eval/q8.json",
        "metrics/mnist/eval/q16.json",
        "metrics/mnist/compare.json",
        "metrics/mnist/latency.json",
    }
    monitor = json.loads((repo.path / "metrics" / "monitor" / "report.json").read_text())
    assert monitor["alerts"] == 0  # the held-out split is no drift


def test_batch_predictions_reproduce_the_evaluate_stage_exactly(repo):
    """`quantpipe predict` on the test split gives the very metrics evaluate wrote."""
    from quantpipe.data import FEATURE_NAMES, load_dataset
    from quantpipe.metrics import accuracy

    test = load_dataset(repo.path / "data" / "split" / "test.npz")
    rows = (
        ",".join(FEATURE_NAMES)
        + "\n"
        + "".join(",".join(map(repr, row)) + "\n" for row in test.X.tolist())
    )
    for variant in VARIANTS:
        result = subprocess.run(
            [sys.executable, "-m", "quantpipe.batch", "--model", variant, "-q"],
            input=rows,
            capture_output=True,
            text=True,
            cwd=repo.path,
            env=repo.env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        predictions = [float(line) for line in result.stdout.splitlines()]
        assert accuracy(test.y, predictions) == repo.metrics(variant)["accuracy"]


def _lock_stages(repo) -> dict:
    return yaml.safe_load((repo.path / "dvc.lock").read_text())["stages"]


def _dvcignored(repo) -> set[str]:
    """The modules that `.dvcignore` hides from DVC (the stage_deps block's paths)."""
    lines = (repo.path / ".dvcignore").read_text().splitlines()
    return {line.lstrip("/") for line in lines if line.startswith("/")}


def _under_a_directory_dep(path: str, deps: list[str], hidden: set[str]) -> bool:
    return path not in hidden and any(path.startswith(f"{d}/") for d in deps)


def test_every_stage_process_loads_only_modules_it_lists(repo):
    """What each stage's process imported, as the fixture's `dvc repro` ran it, is among the
    deps that dvc.yaml lists (DVC checks those: a dep removed from dvc.yaml but left in
    dvc.lock is not a change to DVC)."""
    pipeline = yaml.safe_load((repo.path / "dvc.yaml").read_text())["stages"]
    hidden = _dvcignored(repo)
    stages = _lock_stages(repo)
    # a stage whose outputs git keeps (`cache: false`) and whose deps the repro rebuilt as
    # they were did not run in it: run those here as dvc would, in a shell
    skipped = {stage["cmd"] for stage in stages.values()} - set(repo.trace.loaded())
    for command in sorted(skipped):
        result = subprocess.run(
            command,
            shell=True,
            cwd=repo.path,
            env=repo.trace.env(repo.env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
    loads = repo.trace.loaded()
    assert sorted(loads) == sorted(stage["cmd"] for stage in stages.values())
    for name, stage in stages.items():
        loaded = {
            Path(f).resolve().relative_to(repo.path.resolve()).as_posix()
            for f in loads[stage["cmd"]]
            if Path(f).resolve().is_relative_to(repo.path.resolve())
        }
        listed = pipeline[name.partition("@")[0]]["deps"]
        covered = {f for f in loaded if f in listed or _under_a_directory_dep(f, listed, hidden)}
        assert loaded, name
        assert loaded == covered, f"{name} loads {sorted(loaded - covered)} but does not list them"
    assert _status(repo) == ""  # the reruns wrote the same bytes, timings aside
    # the timings DVC recorded, back in place (a rerun measured its own)
    _git("checkout", "--", *machine_dependent(repo.path / "dvc.yaml"), cwd=repo.path)
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout


def test_changing_any_module_reruns_every_stage_that_imports_it_and_no_other(repo):
    from tests.test_stage_deps import deps

    importers: dict[str, set[str]] = {}
    for name, stage in _lock_stages(repo).items():
        for path in deps.closure(deps.entry_module(stage["cmd"]), repo.path):
            importers.setdefault(path.relative_to(repo.path).as_posix(), set()).add(name)
    modules = sorted(
        p.relative_to(repo.path).as_posix()
        for package in ("stages", "quantpipe")
        for p in (repo.path / package).rglob("*.py")
    )
    assert set(importers) <= set(modules)
    for module in modules:
        path = repo.path / module
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        try:
            changed = repo.changed_stages()
        finally:
            path.write_bytes(original)
        missed = importers.get(module, set()) - changed
        assert not missed, f"changing {module} leaves {sorted(missed)} up to date"
        if module not in importers:  # hidden by .dvcignore: nothing to rerun
            assert not changed, f"changing {module}, which no stage imports, changes {changed}"
    assert set(modules) - set(importers) == _dvcignored(repo)
    pycache = repo.path / "quantpipe" / "__pycache__"
    pycache.mkdir(exist_ok=True)
    (pycache / "stray.cpython-311.pyc").write_bytes(b"not a change")
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout


def test_an_experiment_with_the_committed_values_changes_no_file(repo):
    """`dvc exp run -S` rewrites params.yaml in its own YAML style; the committed file is in
    that style, so setting a value to what it is already leaves every byte as it was."""
    before = (repo.path / "params.yaml").read_bytes()
    repo.dvc("exp", "run", "-S", "quantize.bits=[8,16]", "-S", "integer.bits=[8]")
    assert (repo.path / "params.yaml").read_bytes() == before
    assert _status(repo) == ""


def test_changing_widths_leaves_nothing_stale_and_bad_params_stop_the_run(repo):
    """Runs after the tests above, on the same copy: widths [4, 8], then a misspelt key."""

    def edit(params):
        params["quantize"].update(bits=[4, 8], casts=["bfloat16"])
        params["integer"]["bits"] = []
        params["mnist"]["quantize"]["bits"] = [4, 8]

    repo.set_params(edit)
    repo.dvc("repro")
    assert sorted(p.name for p in (repo.path / "metrics" / "eval").iterdir()) == [
        "bfloat16.json",
        "fp64.json",
        "q4.json",
        "q8.json",
    ]
    assert sorted(p.name for p in (repo.path / "models" / "quantized").iterdir()) == [
        "bfloat16.npz",
        "q4.npz",
        "q8.npz",
    ]
    lock = yaml.safe_load((repo.path / "dvc.lock").read_text())
    assert list(lock["stages"]) == list(
        yaml.safe_load((repo.path / "dvc.yaml").read_text())["stages"]
    )
    mnist = repo.path / "metrics" / "mnist"
    assert sorted(p.name for p in (mnist / "eval").iterdir()) == ["fp32.json", "q4.json", "q8.json"]
    assert sorted(p.name for p in (repo.path / "models" / "mnist" / "quantized").iterdir()) == [
        "q4.npz",
        "q8.npz",
    ]
    assert sorted(json.loads((mnist / "latency.json").read_text())) == ["fp32", "q4", "q8"]
    q4 = json.loads((mnist / "compare.json").read_text())["q4"]
    assert q4["accuracy_delta"] >= -0.01  # the aim: within 1 point of fp32
    assert q4["param_bytes_ratio"] < 0.16
    assert repo.metrics("q4")["fidelity"]["rmse"] <= 0.06
    shown = json.loads(repo.dvc("metrics", "show", "--json").stdout)[""]["data"]
    assert "metrics/eval/q16.json" not in shown
    assert "q16" not in json.loads((repo.path / "metrics" / "compare.json").read_text())
    assert "Data and pipelines are up to date." in repo.dvc("status").stdout
    assert repo.metrics("q8") == json.loads(
        (REPO_ROOT / "metrics" / "eval" / "q8.json").read_text()
    )

    # putting the widths back gives back the committed dvc.lock and metrics, byte for byte
    _git("checkout", "--", "params.yaml", cwd=repo.path)
    repo.dvc("repro")
    assert _status(repo) == ""

    repo.set_params(lambda p: p["quantize"].update(bitz=[4]))
    before = (repo.path / "dvc.lock").read_text()
    failed = repo.dvc("repro", check=False)
    assert failed.returncode != 0
    assert "error: params.yaml: unknown key 'quantize.bitz'; did you mean 'bits'?" in (
        failed.stdout + failed.stderr
    )
    assert "Traceback" not in failed.stdout + failed.stderr
    assert (repo.path / "dvc.lock").read_text() == before


def _clone(repo: Repo, dest: Path, storage: Path) -> Repo:
    """A git clone of ``repo`` (no DVC cache, no outputs) whose default remote is ``storage``."""
    _git("clone", "-q", str(repo.path), str(dest), cwd=dest.parent)
    clone = Repo(dest, Path(repo.env["QUANTPIPE_DATA"]))
    clone.dvc("remote", "add", "--local", "-d", "team", str(storage))
    return clone


def _ran(result: subprocess.CompletedProcess) -> list[str]:
    return [
        line for line in (result.stdout + result.stderr).splitlines() if "Running stage" in line
    ]


def test_a_fresh_clone_pulls_what_was_pushed_and_recomputes_nothing(repo, tmp_path):
    """Runs last on the copy: push data, models and the run-cache to a directory remote; a
    fresh clone's `dvc pull` then `dvc repro` runs no stage, and neither does another's
    `dvc repro --pull --allow-missing`."""
    _git("checkout", "--", "params.yaml", cwd=repo.path)  # the test above left a misspelt key
    repo.dvc("repro")
    assert _status(repo) == ""
    storage = tmp_path / "storage"
    repo.dvc("remote", "add", "--local", "-d", "team", str(storage))
    repo.dvc("push", "--run-cache")
    assert (storage / "files" / "md5").is_dir()
    assert (storage / "runs").is_dir()

    pulled = _clone(repo, tmp_path / "pulled", storage)
    pulled.dvc("pull")
    assert (pulled.path / "models" / "mnist" / "quantized" / "q8.npz").is_file()
    assert _ran(pulled.dvc("repro")) == []
    assert _status(pulled) == ""
    assert "Data and pipelines are up to date." in pulled.dvc("status").stdout

    lazy = _clone(repo, tmp_path / "lazy", storage)
    assert _ran(lazy.dvc("repro", "--pull", "--allow-missing")) == []
    assert _status(lazy) == ""


#: The sweep of the simulation below: each worker runs its share of the widths, concurrently.
SWEEP = {"worker-0": ["[4,8,16]", "[6,8,16]"], "worker-1": ["[8,12,16]", "[3,8,16]"]}


def _start_experiments(worker: Repo, grid: list[str]) -> subprocess.Popen:
    """A worker's process: each experiment of its share, then `dvc exp push` of them all
    (their data and the run-cache go to the DVC remote) and `quantpipe share` (the runs'
    git-kept outputs, which `--run-cache` leaves out)."""
    steps = [f"{sys.executable} -m dvc exp run -q -S 'quantize.bits={bits}'" for bits in grid]
    steps.append(f"{sys.executable} -m dvc exp push --run-cache origin")
    steps.append(f"{sys.executable} -m quantpipe.cli share -q")
    return subprocess.Popen(
        ["bash", "-c", " && ".join(steps)],
        cwd=worker.path,
        env=worker.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_sweep_across_workers_is_shared_through_git_and_the_remote(repo, tmp_path):
    """The sweep workflow, simulated: a bare origin, a directory remote, two worker clones
    running their experiments at once as separate processes, each pushing them; then a fresh
    clone pulls and shows every experiment, and a worker rerunning another's experiment
    computes nothing (the run-cache)."""
    started = time.monotonic()
    origin = tmp_path / "origin.git"
    _git("clone", "-q", "--bare", str(repo.path), str(origin), cwd=tmp_path)
    storage = tmp_path / "storage"
    repo.dvc("remote", "add", "--local", "-f", "-d", "team", str(storage))
    repo.dvc("push", "--run-cache")
    workers = {}
    for name in SWEEP:
        workers[name] = _clone_from(origin, tmp_path / name, storage, repo)
        workers[name].dvc("pull")
    procs = {name: _start_experiments(workers[name], grid) for name, grid in SWEEP.items()}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name}:\n{out}"

    fresh = _clone_from(origin, tmp_path / "fresh", storage, repo)
    fresh.dvc("exp", "pull", "origin")
    shown = json.loads(fresh.dvc("exp", "show", "--json").stdout)
    experiments = [e for row in shown for e in (row.get("experiments") or [])]
    widths = sorted(
        str(run["revs"][0]["data"]["params"]["params.yaml"]["data"]["quantize"]["bits"])
        for run in experiments
    )
    expected = sorted(
        str([int(b) for b in g.strip("[]").split(",")]) for gs in SWEEP.values() for g in gs
    )
    assert widths == expected

    # worker-1, whose workspace holds the last of its own experiments, reruns worker-0's
    # first: DVC's run-cache (pulled from the remote) restores every stage, the q4 model
    # among them, and the stale q3 of worker-1's last experiment is removed
    rerun = workers["worker-1"]
    assert (rerun.path / "models" / "quantized" / "q3.npz").is_file()
    rerun.dvc("pull", "--run-cache")
    again = rerun.dvc("exp", "run", "--pull", "-S", f"quantize.bits={SWEEP['worker-0'][0]}")
    assert "Stage 'quantize' is cached - skipping run" in again.stdout
    assert _ran(again) == []
    assert sorted(p.name for p in (rerun.path / "metrics" / "eval").iterdir()) == [
        f"{v}.json" for v in sorted(["fp64", "q4", "q8", "q16", "q8i", *CASTS])
    ]
    assert not (rerun.path / "models" / "quantized" / "q3.npz").exists()
    print(
        f"\nsweep: {sum(map(len, SWEEP.values()))} experiments, {len(SWEEP)} workers, "
        f"{time.monotonic() - started:.0f} s; stages recomputed on the rerun: {len(_ran(again))}"
    )


def _clone_from(origin: Path, dest: Path, storage: Path, repo: Repo) -> Repo:
    _git("clone", "-q", str(origin), str(dest), cwd=dest.parent)
    clone = Repo(dest, Path(repo.env["QUANTPIPE_DATA"]))
    clone.dvc("remote", "add", "--local", "-d", "team", str(storage))
    _git("config", "user.name", "worker", cwd=dest)
    _git("config", "user.email", "worker@example.com", cwd=dest)
    return clone


def test_pip_install_gives_the_whole_package_and_no_stages(tmp_path):
    """What `pip install .` installs: every module of quantpipe/ (subpackages included),
    py.typed, the console command, and no top-level `stages`."""
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    result = subprocess.run(
        [*pip, "--target", str(target), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    source = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "quantpipe").rglob("*.py")}
    installed = {p.relative_to(target).as_posix() for p in (target / "quantpipe").rglob("*.py")}
    assert installed == source
    assert (target / "quantpipe" / "py.typed").is_file()
    assert not (target / "stages").exists()
    assert (target / "bin" / "quantpipe").is_file()
    result = subprocess.run(
        [sys.executable, "-c", "import quantpipe.serve.app, quantpipe.quant.linear"],
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
