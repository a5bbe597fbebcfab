"""README's generated tables agree with the committed metrics files (commands/tables.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from bignn import paths
from commands import frontier, tables
from tests.conftest import committed as git_committed

ROOT = Path(__file__).resolve().parents[1]


def _committed(tmp: Path) -> Path:
    """metrics/ and params.yaml as the last commit holds them: a `make repro` that measured this machine's
    latencies anew, or a workspace `dvc exp run`, changes the workspace's copy, not the committed one."""
    archive = subprocess.run(["git", "archive", "HEAD", "metrics", "params.yaml"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "metrics"


def test_committed_tables_are_what_the_metrics_give(tmp_path: Path) -> None:
    """Each page's tables are what the committed metrics give, or what the workspace's give (a developer who
    reran the pipeline and regenerated the tables, not yet committed); anything else has drifted."""
    committed = _committed(tmp_path)
    for doc in tables.DOCS:
        text = (ROOT / doc).read_text()
        assert "<!-- begin results -->" in text or doc.name != "README.md"
        assert text in (tables.render(text, committed), tables.render(text, ROOT / "metrics")), (
            f"{doc}: run `python -m commands tables`")


def test_the_committed_check_is_not_the_workspace(tmp_path: Path) -> None:
    """The test above reads git's copy: a metric changed in the workspace only leaves it as committed."""
    committed = _committed(tmp_path)
    assert (committed / "dense.json").read_text() == git_committed("metrics/dense.json")


def test_a_changed_metric_changes_its_table(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    dense = json.loads((metrics / "dense.json").read_text())
    (metrics / "dense.json").write_text(json.dumps({**dense, "accuracy": 12.34}))
    text = "before\n<!-- begin results -->\nstale\n<!-- end results -->\nafter\n"
    out = tables.render(text, metrics)
    assert out.startswith("before\n<!-- begin results -->\n| metric | dense |") and out.endswith("after\n")
    assert "| test accuracy (%) | 12.34 |" in out and "stale" not in out
    assert tables.render(out, metrics) == out


def test_unknown_table_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown generated table 'nope'"):
        tables.render("<!-- begin nope -->\n<!-- end nope -->", ROOT / "metrics")


def test_docs_tables_follow_the_frontier_csv_and_name_its_machine(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    csv = metrics / "frontier_sweep.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    row = next(i for i, line in enumerate(lines) if line.startswith("unstructured + compressed,"))
    cells = lines[row].split(",")
    cells[header.index("accuracy")] = "12.345"
    lines[row] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    text = "<!-- begin frontier_unstructured -->\n<!-- end frontier_unstructured -->\n"
    out = tables.render(text, metrics)
    assert f"| unstructured + compressed | {cells[1]} |" in out and "| 12.35 ± " in out
    assert "channel" not in out  # only the methods that block names
    run = tables.render("<!-- begin frontier_run -->\n<!-- end frontier_run -->\n", metrics)
    assert "lscpu `" in run and "experiments queued on commit" in run  # commit or commits
    # Whether the rows are what this checkout's code gives, from the code the run recorded: said either way.
    assert ("This checkout's pipeline code" in run) != ("may not be what the pipeline gives now" in run)
    run_json = metrics / "frontier_run.json"
    d = json.loads(run_json.read_text())
    d["code"] = {c: frontier.code_digests() for c in d["baseline"]}
    run_json.write_text(json.dumps(d))
    assert "This checkout's pipeline code (`bignn/`, `stages/`" in tables.frontier_run(metrics)
    first = d["baseline"][0]
    # One group's experiments ran on that commit, the others' elsewhere (a run in parts), whatever the committed
    # run was: a change to another group must leave that commit's rows alone.
    d["groups"] = {**d["groups"], first: d["groups"][first][:1]}
    d["code"][first] = {**d["code"][first], "conf/": "0" * 12}
    d["composed"][first] = frontier.composed_digests(frontier.GROUPS)  # what this checkout's conf/ composes
    run_json.write_text(json.dumps(d))
    # Only conf/ changed, and it composes what each group of that commit's rows composed there: still current.
    line = tables.frontier_run(metrics)
    whose = "that commit's" if len(d["baseline"]) == 1 else "those commits'"
    assert "This checkout's pipeline code (`bignn/`, `stages/`" in line and f"otherwise is {whose}" in line
    assert f"Since {first} only `conf/` changed, and every group its rows came from composes the same" in line
    # A group of its rows composes other params now (its preset changed): its rows are not current.
    group = d["groups"][first][0]  # a group whose experiments ran on that commit
    composed = d["composed"][first]
    d["composed"][first] = {**composed, group: "0" * 12}
    run_json.write_text(json.dumps(d))
    line = tables.frontier_run(metrics)
    assert (f"Since {first} only `conf/` changed, but `{group}` composes another params.yaml from it: the rows it "
            f"gave may not be") in line and f"`python -m commands frontier --groups {group} --rerun`" in line
    assert "This checkout's pipeline code" not in line
    # Another group changed, whose experiments ran on other commits: that commit's rows stay current.
    other = next(g for g in frontier.GROUPS if g not in d["groups"][first])
    d["composed"][first] = {**composed, other: "0" * 12}
    run_json.write_text(json.dumps(d))
    assert f"Since {first} only `conf/` changed, and every group" in tables.frontier_run(metrics)
    # A run that did not record its groups: read off the rows that name the commit (the dense row names them all).
    run_json.write_text(json.dumps({k: v for k, v in d.items() if k != "groups"}))
    assert f"but `{other}` composes another params.yaml" in tables.frontier_run(metrics)
    # Nor where code beside conf/ changed, whatever it composes.
    d["composed"][first] = composed
    d["code"][first] = {**d["code"][first], "bignn/": "0" * 12}
    run_json.write_text(json.dumps(d))
    assert f"Since {first} this checkout's `bignn/` and `conf/` changed:" in tables.frontier_run(metrics)
    run_json.write_text(json.dumps({**d, "code": {}}))
    assert "is not recorded" in tables.frontier_run(metrics)


def test_the_smallest_presets_table_says_whether_each_goal_is_met(tmp_path: Path) -> None:
    """The verdict follows the seeds' mean bytes and accuracy against the preset's goal."""
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    path = metrics / "seeds" / "smallest-kb8.json"
    runs = [{"seed": s, "accuracy": a, "bytes": 7000, "seconds": 1.0} for s, a in enumerate((99.5, 99.4, 99.6))]
    path.write_text(json.dumps({**json.loads(path.read_text()), "runs": runs, "mean": 99.5, "std": 0.1}))
    row = next(line for line in tables.smallest_presets(metrics).splitlines() if line.startswith("| `kb8`"))
    assert "| 99.50 ± 0.10 |" in row and "| 7,000 (7,000 / 7,000 / 7,000) | yes |" in row
    path.write_text(json.dumps({**json.loads(path.read_text()), "runs": [{**r, "bytes": 8001} for r in runs]}))
    assert "| no |" in next(line for line in tables.smallest_presets(metrics).splitlines() if "`kb8`" in line)


def test_the_file_bytes_table_is_each_parts_mean_over_the_seeds(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    parts = [dict(zip(tables.FILE_PARTS, (15, 20, 800 + s, 900, 128, 150 + 2 * s), strict=True)) for s in range(3)]
    runs = [{"seed": s, "accuracy": 99.0, "bytes": sum(p.values()), "seconds": 1.0, "parts": p}
            for s, p in enumerate(parts)]
    (metrics / "seeds" / "smallest-kb2.json").write_text(json.dumps({"runs": runs, "mean": 99.0, "std": 0.0}))
    row = next(line for line in tables.smallest_bytes(metrics).splitlines() if line.startswith("| `kb2`"))
    assert row == "| `kb2` | 15 | 20 | 801 | 900 | 128 | 152 | 2,016 |"
    # A preset whose runs predate the parts has no row rather than a wrong one.
    kb8 = json.loads((metrics / "seeds" / "smallest-kb8.json").read_text())
    (metrics / "seeds" / "smallest-kb8.json").write_text(json.dumps({**kb8, "runs": [
        {k: v for k, v in r.items() if k != "parts"} for r in kb8["runs"]]}))
    assert "`kb8`" not in tables.smallest_bytes(metrics)


def test_the_cluster_table_compares_each_runner_with_the_queue(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    shutil.copytree(ROOT / "metrics", metrics)
    queue = json.loads((metrics / "cluster" / "queue.json").read_text())
    (metrics / "cluster" / "queue.json").write_text(json.dumps({**queue, "wall_seconds": 200.0}))
    dask = json.loads((metrics / "cluster" / "dask.json").read_text())
    (metrics / "cluster" / "dask.json").write_text(json.dumps({**dask, "wall_seconds": 300.0}))
    out = tables.cluster(metrics)
    assert "| 200 s | 33.3 s | 1.00x |" in out and "| 300 s | 50.0 s | 1.50x |" in out


def test_the_committed_frontier_table_is_the_mean_of_its_points(tmp_path: Path) -> None:
    """Each row of metrics/frontier_sweep.csv that metrics/frontier_points.json holds points for is their mean
    over the seeds, and any other row is an earlier run's, naming a carried commit: the table is what its
    points give, and the run names every experiment they came from."""
    committed = _committed(tmp_path)
    recorded = json.loads((committed / frontier.POINTS_JSON.name).read_text())
    run = json.loads((committed / paths.FRONTIER_JSON.name).read_text())
    means = {(r["method"], r["setting"]): r for r in frontier.summarize(recorded["points"])}
    marks = ("pareto_bytes", "pareto_latency")  # taken over the whole table, carried rows included
    for row in frontier.read_rows(committed / frontier.FRONTIER_CSV.name):
        mean = means.pop((row["method"], row["setting"]), None)
        if mean is None:
            assert set(row["commit"].split(" + ")) <= set(run["carried"]), row
        else:
            assert {k: v for k, v in row.items() if k not in marks} == {
                k: v for k, v in mean.items() if k not in marks}
    assert not means  # every method and setting of the points is in the table
    assert sorted({p["experiment"] for p in recorded["points"]}) == run["experiments"]
