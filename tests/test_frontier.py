"""The frontier helper: the experiments it queues, the table it builds from `dvc exp show --json`, the best
point per accuracy level and the picture."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bignn.io import write_csv
from commands import frontier
from commands.cluster import Experiment

ROOT = Path(__file__).resolve().parents[1]

STUDENT = {"conv_channels": [16, 32, 64], "hidden": [128]}


def _params(amount: float, channel: float, seed: int) -> dict[str, Any]:
    return {"prune": {"amount": amount, "seed": seed}, "channel": {"amount": channel, "seed": seed},
            "combine": {"amount": 0.8, "seed": seed}, "distill": {"student": STUDENT, "seed": seed, "alpha": 0.5}}


def _metrics(accuracy: float, size: int, latency: float) -> dict[str, Any]:
    return {"data": {"accuracy": accuracy, "checkpoint_bytes": size, "params_total": 1000,
                     "latency_b1_ms": latency}}


def _exp(name: str, amount: float, channel: float, seed: int, acc: float, latency: float = 0.3) -> dict:
    metrics = {file: _metrics(acc, 1000 + seed, latency) for file, _ in frontier.METHODS.values()}
    metrics["metrics/machine.json"] = {"data": {"cpu": "Xeon", "physical_cores": 2}}
    return {"revs": [{"name": name, "data": {"params": {"params.yaml": {"data": _params(amount, channel, seed)}},
                                             "metrics": metrics}}]}


def _sets(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == "-S"]


def test_one_experiment_per_group_and_seed_with_its_stage_seeds_set() -> None:
    cmds = frontier.queue_commands(["default", "p99"], seeds=[0, 1])
    names = [c[c.index("-n") + 1] for c in cmds]
    assert names == ["frontier-default-0", "frontier-default-1", "frontier-p99-0", "frontier-p99-1"]
    assert cmds[1][:4] == ["dvc", "exp", "run", "--queue"] and cmds[1][-1] == "evaluate"  # export is not run
    assert _sets(cmds[1]) == ["prune.seed=1", "channel.seed=1", "combine.seed=1", "distill.seed=1"]
    # A preset of one stage: the preset by name and that stage's seed only, so the other stages' models are the
    # default group's (the run-cache gives them back).
    assert _sets(cmds[3]) == ["prune=p99", "prune.seed=1"]
    assert _sets(frontier.queue_commands(["light"], seeds=[2])[0])[:2] == ["prune.amount=0.9", "channel.amount=0.5"]
    # The top-level seed would retrain the dense model: never set.
    assert not any(a.startswith("seed=") for c in cmds for a in c)
    assert [frontier.group_of(n) for n in names] == [frontier.GROUPS[g] for g in ("default",) * 2 + ("p99",) * 2]
    assert frontier.group_of("frontier-1-0") is None and frontier.group_of("sweep-p99-0") is None


def test_the_experiment_whose_overrides_params_yaml_holds_runs_evaluate_again() -> None:
    """frontier-default-0 sets every stage seed to params.yaml's own 0: DVC would hand back the committed outputs,
    evaluate's timings measured on whichever machine committed dvc.lock. That one alone runs evaluate again."""
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    cmds = frontier.queue_commands(["default", "light", "p99"], seeds=[0, 1], params=committed)
    forced = [c[c.index("-n") + 1] for c in cmds if c[-3:] == ["-f", "-s", "evaluate"]]
    assert forced == ["frontier-default-0"] and all(c[-1] == "evaluate" for c in cmds)
    # The same on Dask; and params.yaml with another seed holds none of them.
    [exp] = frontier.frontier_experiments(["default"], seeds=[0], params=committed)
    assert exp.force and exp.target_args() == ["-f", "-s", "evaluate"]
    other = {**committed, "prune": {**committed["prune"], "seed": 1}}
    assert not any(e.force for e in frontier.frontier_experiments(["default"], seeds=[0, 1], params=other))
    assert not frontier.frontier_experiments(["default"], seeds=[0])[0].force  # no params given: nothing forced
    with pytest.raises(ValueError, match="x: force needs a target stage"):
        Experiment("x", (), "", force=True).target_args()


def test_points_group_by_method_and_setting_and_average_the_seeds(tmp_path: Path) -> None:
    shown = [{"rev": "abc", "experiments": [_exp("frontier-light-0", 0.9, 0.5, 0, 99.40),
                                            _exp("frontier-light-1", 0.9, 0.5, 1, 99.30),
                                            _exp("frontier-default-0", 0.95, 0.75, 0, 99.20),
                                            _exp("frontier-p99-0", 0.99, 0.75, 0, 99.10),
                                            _exp("sweep-1", 0.5, 0.5, 0, 50.0)]}]
    pts = list(frontier.points(shown))
    # Every model of the size groups; of the preset, the dense and the unstructured one only; no sweep-1.
    # size groups: the channel model is combined, the student distilled (alpha 0.5), so one student method each
    assert len(pts) == 3 * (len(frontier.METHODS) - 2) + 2
    rows = frontier.summarize(pts)
    # The dense model: one point over every experiment's measurement of it.
    assert rows[0]["method"] == "dense" and rows[0]["runs"] == 4 and rows[0]["setting"] == "as trained"
    preset = [r for r in rows if r["setting"].endswith("(p99)")]
    assert [(r["method"], r["setting"], r["runs"]) for r in preset] == [
        ("unstructured + compressed", "prune.amount 0.99 (p99)", 1)]
    # The preset's experiment left the channel model of the default group alone: not counted twice.
    assert [r["runs"] for r in rows if r["method"] == "channel" and r["setting"] == "channel.amount 0.75"] == [1]
    (unstructured,) = [r for r in rows if r["method"] == "unstructured + compressed" and r["runs"] == 2]
    assert unstructured["setting"] == "prune.amount 0.9"
    assert unstructured["accuracy"] == pytest.approx(99.35) and unstructured["accuracy_std"] == pytest.approx(0.071)
    assert unstructured["bytes"] == 1000  # mean of 1000 and 1001, rounded
    combined = {r["setting"] for r in rows if r["method"] == "channel + unstructured + compressed"}
    assert combined == {"channel.amount 0.5 + combine.amount 0.8", "channel.amount 0.75 + combine.amount 0.8"}
    assert {r["setting"] for r in rows if r["method"] == "student (distilled)"} == {"conv 16/32/64 + FC 128"}
    assert not [r for r in rows if r["method"] == "student alone"]
    # Each row names the commit its experiments were queued on and the CPU they ran on (from machine.json).
    assert {(r["commit"], r["machine"]) for r in rows} == {("abc", "Xeon (2 cores)")}
    # The CSV reads back as written: no cell carries a comma, every type returns.
    write_csv(tmp_path / "f.csv", rows)
    assert frontier.read_rows(tmp_path / "f.csv") == rows


def test_a_run_of_some_groups_keeps_the_other_rows_with_their_commit(tmp_path: Path) -> None:
    """Rows of settings a run did not measure stay, naming their own commit and groups; the ones it measured
    are replaced, and so is every row of a group it ran again; Pareto marks are taken over the merged table. A
    table from before the commit column reads back with "unknown"."""
    def point(method: str, acc: float, size: int, latency: float, commit: str, group: str) -> dict[str, Any]:
        return {**_row(method, acc, size, latency), "params": 1, "commit": commit, "experiment": f"frontier-{group}-0"}

    old = frontier.summarize([point("dense", 99.5, 10**7, 1.2, "old0000", "light"),
                              point("a", 99.45, 1000, 0.5, "old0000", "light"),
                              {**point("b", 99.4, 500, 0.5, "old0000", "heavy"), "setting": "t"}])
    new = frontier.summarize([point("dense", 99.5, 10**7, 1.3, "new0000", "p99"),
                              point("b", 99.46, 900, 0.4, "new0000", "p99")])
    rows = frontier.carry(new, old)
    assert [(r["method"], r["setting"], r["commit"], r["groups"]) for r in rows] == [
        ("dense", "s", "new0000", "p99"), ("b", "s", "new0000", "p99"), ("a", "s", "old0000", "light"),
        ("b", "t", "old0000", "heavy")]
    # A run of heavy replaces heavy's old row although it names another setting now (its preset changed).
    again = frontier.summarize([point("dense", 99.5, 10**7, 1.3, "new0000", "heavy"),
                                {**point("b", 99.42, 450, 0.4, "new0000", "heavy"), "setting": "u"}])
    assert [(r["setting"], r["groups"]) for r in frontier.carry(again, old) if r["method"] == "b"] == [
        ("u", "heavy")]
    # b (new) at 900 B and 99.46 beats a (old) at 1000 B: a lost its mark in the merge, b at 500 B keeps its.
    assert [r["pareto_bytes"] for r in rows] == [True, True, False, True]
    assert old[1]["pareto_bytes"]  # the old table's own rows are not changed in place
    # Rows from another CPU would share the new dense row's latency: refused, naming both machines.
    elsewhere = [{**r, "machine": "AMD EPYC (2 cores)"} for r in new]
    with pytest.raises(ValueError, match=r"ran on AMD EPYC \(2 cores\) and the table's other rows on cpu;"):
        frontier.carry(elsewhere, old)
    legacy = tmp_path / "legacy.csv"
    write_csv(legacy, [{k: v for k, v in r.items() if k not in ("commit", "machine")} for r in old])
    assert {(r["commit"], r["machine"]) for r in frontier.read_rows(legacy)} == {("unknown", "unknown")}


def test_a_run_in_parts_adds_the_earlier_parts_of_the_same_code_and_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    """A frontier run in parts (some groups per session): a later part takes the recorded points of the
    experiments it did not measure itself, where they ran on its pipeline code and CPU, and their presets'
    layers; points of other code or another CPU, and of experiments it measured again, are not taken."""
    shown = [{"rev": "new1234", "experiments": [_exp("frontier-light-0", 0.9, 0.5, 0, 99.4)]}]
    pts = list(frontier.points(shown))
    code = {"bignn/": "aaa", "stages/": "bbb"}

    def recorded_points(name: str, commit: str, machine: str = "Xeon (2 cores)") -> list[dict[str, Any]]:
        return [{**p, "experiment": name, "commit": commit, "machine": machine} for p in pts[:2]]

    recorded = {"code": {"old1234": dict(code), "older12": {**code, "bignn/": "ccc"}},
                "points": [*recorded_points("frontier-p99-0", "old1234"), *recorded_points("frontier-p99-1", "older12"),
                           *recorded_points("frontier-light-0", "old1234"),
                           *recorded_points("frontier-s16-0", "old1234", "AMD EPYC (2 cores)")],
                "layers": [{"preset": "p99", "seed": 0, "layer": "fc"}, {"preset": "p99", "seed": 1, "layer": "fc"},
                           {"preset": "s16", "seed": 0, "layer": "fc"}]}
    kept, layers = frontier.earlier_parts({"frontier-light-0"}, code, "Xeon (2 cores)", recorded)
    assert {p["experiment"] for p in kept} == {"frontier-p99-0"} and len(kept) == 2
    assert layers == [{"preset": "p99", "seed": 0, "layer": "fc"}]
    assert "2 experiments of metrics/frontier_points.json ran on other pipeline code or another CPU" in \
        capsys.readouterr().out
    # The table then averages them with this run's: the p99 setting's rows count the earlier part's run.
    rows = frontier.summarize(pts + kept)
    assert {r["commit"] for r in rows if r["method"] == "dense"} == {"new1234 + old1234"}
    assert frontier.earlier_parts({"frontier-light-0"}, code, "Xeon (2 cores)", {}) == ([], [])
    # What the next part runs: the experiments no part ran on this code and CPU.
    done = frontier.recorded_here(recorded, code, "Xeon (2 cores)")
    assert done == {"frontier-p99-0", "frontier-light-0"}
    assert [e.name for e in frontier.frontier_experiments(["light", "p99"], skip=done)] == [
        "frontier-light-1", "frontier-light-2", "frontier-p99-1", "frontier-p99-2"]
    assert frontier.recorded_here(recorded, code, "AMD EPYC (2 cores)") == {"frontier-s16-0"}
    # Each preset's layers are its lowest seed's, whichever part measured it.
    both = [{"preset": "p99", "seed": 2, "layer": "a"}, {"preset": "p99", "seed": 1, "layer": "a"},
            {"preset": "kb4", "seed": 0, "layer": "b"}]
    assert frontier.lowest_seed(both) == both[1:]


def _row(method: str, acc: float, size: int, latency: float) -> dict[str, Any]:
    return {"method": method, "setting": "s", "runs": 3, "accuracy": acc, "accuracy_std": 0.05,
            "bytes": size, "latency_b1_ms": latency, "latency_std": 0.01, "commit": "abc1234", "machine": "cpu",
            "experiment": "frontier-default-0"}


def test_pareto_marks_and_best_point_per_accuracy_level() -> None:
    pts = [{**_row("dense", 99.5, 10**7, 1.2), "params": 1}, {**_row("a", 99.45, 200_000, 1.2), "params": 1},
           {**_row("b", 99.35, 1_000_000, 0.3), "params": 1},
           {**_row("c", 99.3, 50_000, 0.33), "params": 1}, {**_row("d", 99.2, 60_000, 0.5), "params": 1}]
    rows = frontier.summarize(pts)
    by = {r["method"]: r for r in rows}
    assert [m for m in by if by[m]["pareto_bytes"]] == ["dense", "a", "c"]  # d: c is smaller and better
    assert [m for m in by if by[m]["pareto_latency"]] == ["dense", "b"]  # a: dense is as fast and better
    best = {b["level"]: b for b in frontier.best_per_level(rows, levels=(99.5, 99.4, 99.3, 99.6))}
    assert best[99.5]["smallest"].startswith("dense") and best[99.6]["smallest"] == "none"
    assert best[99.4]["smallest"] == ("a (s): 200,000 B, 99.45 ± 0.00%; next dense (s) 10,000,000 B, gap > both "
                                      "stds")  # one seed each: no spread
    assert best[99.3]["smallest"].startswith("c ")
    # b and c: 0.03 ms apart with latency stds of 0 (one run each): b is faster.
    assert best[99.3]["fastest"].startswith("b (s): 0.300 ± 0.000 ms") and "gap > both stds" in best[99.3]["fastest"]
    noisy = [{**r, "latency_std": 0.05} for r in rows]
    assert "within the stds: a tie" in frontier.best_per_level(noisy, levels=(99.3,))[0]["fastest"]


def test_picture_is_written_and_the_same_rows_give_the_same_bytes(tmp_path: Path) -> None:
    rows = frontier.summarize([{**_row("dense", 99.5, 10**7, 1.2), "params": 1},
                               {**_row("a", 99.4, 10**5, 0.4), "params": 1},
                               {**_row("a", 99.3, 10**4, 0.3), "params": 1},
                               {**_row("b", 95.0, 10**3, 0.3), "params": 1}])  # below the axis floor
    frontier.draw(rows, tmp_path / "one.png")
    frontier.draw(rows, tmp_path / "two.png")
    first = (tmp_path / "one.png").read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and len(first) > 10_000
    assert first == (tmp_path / "two.png").read_bytes()


def test_a_combine_preset_on_the_student_is_its_own_method_and_names_are_unique() -> None:
    exp = _exp("frontier-s16-1", 0.95, 0.75, 1, 99.35)
    exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["combine"] = {"amount": 0.88, "seed": 1,
                                                                          "source": "student"}
    pts = list(frontier.points([{"rev": "abc", "experiments": [exp]}]))
    assert [(p["method"], p["setting"]) for p in pts] == [
        ("dense", "as trained"), ("student + unstructured + compressed", "combine.amount 0.88 (s16)")]
    # A size group on the channel model never yields the student's method, and the reverse.
    size = list(frontier.points([{"rev": "abc", "experiments": [_exp("frontier-default-0", 0.95, 0.75, 0, 99.3)]}]))
    assert {p["method"] for p in size} == set(frontier.METHODS) - {"student + unstructured + compressed",
                                                                    "student alone"}
    # Without distillation (alpha 0) the student file holds the student alone: counted as that.
    plain = _exp("frontier-default-0", 0.95, 0.75, 0, 99.3)
    plain["revs"][0]["data"]["params"]["params.yaml"]["data"]["distill"]["alpha"] = 0.0
    alone = {p["method"] for p in frontier.points([{"rev": "abc", "experiments": [plain]}])}
    assert "student alone" in alone and "student (distilled)" not in alone
    assert _sets(frontier.queue_commands(["s8"], seeds=[2])[0]) == ["combine=s8", "combine.seed=2"]
    # The same experiment under two baselines: refused, not counted twice.
    with pytest.raises(ValueError, match="frontier-s16-1 is under more than one of the baselines"):
        list(frontier.points([{"rev": "abc", "experiments": [exp]}, {"rev": "def", "experiments": [exp]}]))


def test_preset_layers_count_the_nonzeros_of_each_presets_lowest_seed_file(tiny_params, tmp_path: Path) -> None:
    import torch

    from bignn.compression import compress_model
    from bignn.model import build_model

    model = build_model([4, 8], [16])
    with torch.no_grad():
        model.classifier[1].weight[:, ::2] = 0  # half of the first FC layer's weights gone
    data, _ = compress_model(tiny_params.compress, model, 10**6, 10**6)
    digest = "ab" + "0" * 30
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / digest[2:]).write_bytes(data)
    exp = _exp("frontier-s16-0", 0.95, 0.75, 0, 99.3)
    exp["revs"][0]["data"]["outs"] = {"models/combined.bin": {"hash": digest}}
    later = _exp("frontier-s16-1", 0.95, 0.75, 1, 99.3)  # another seed: not read (its hash is not in the cache)
    later["revs"][0]["data"]["outs"] = {"models/combined.bin": {"hash": "cd" + "1" * 30}}
    rows = frontier.preset_layers([{"rev": "abc", "experiments": [later, exp,
                                                                  _exp("frontier-default-0", 0.95, 0.75, 0, 99)]}],
                                  cache=tmp_path)
    assert [(r["preset"], r["seed"], r["layer"]) for r in rows] == [
        ("s16", 0, "features.0"), ("s16", 0, "features.4"), ("s16", 0, "classifier.1"), ("s16", 0, "classifier.4")]
    fc = rows[2]
    assert fc["params"] == 8 * 7 * 7 * 16 and fc["nonzero"] <= fc["params"] // 2
    assert rows[0]["method"] == "student + unstructured + compressed"


def test_code_changes_names_the_pipeline_parts_that_differ_from_a_commits(tmp_path: Path) -> None:
    """A row is what this checkout gives only where its commit's pipeline code is this checkout's: the parts
    that changed since (committed or not) are named, prose does not count, and a shallow clone can tell."""
    def git(*args: str, cwd: Path = tmp_path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.name", "t")
    git("config", "user.email", "t@localhost")
    for name in ("bignn/model.py", "bignn/pruning/gradual.py", "conf/config.yaml", "dvc.yaml", "docs/frontier.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    recorded = frontier.code_digests(git("rev-parse", "HEAD").strip(), tmp_path)
    assert recorded == frontier.code_digests(None, tmp_path) and frontier.code_changes(recorded, tmp_path) == []
    (tmp_path / "docs/frontier.md").write_text("b\n")  # prose is not code
    git("commit", "-qam", "docs")
    assert frontier.code_changes(recorded, tmp_path) == []
    (tmp_path / "conf/config.yaml").write_text("b\n")
    git("commit", "-qam", "conf")
    (tmp_path / "bignn/pruning/gradual.py").write_text("b\n")  # not committed: still this checkout's
    assert frontier.code_changes(recorded, tmp_path) == ["bignn/", "conf/"]
    assert frontier.code_changes(frontier.code_digests("HEAD", tmp_path), tmp_path) == ["bignn/"]
    shallow = tmp_path.parent / "shallow"
    git("clone", "-q", "--depth", "1", f"file://{tmp_path}", str(shallow))
    assert frontier.code_changes(recorded, shallow) == ["conf/"]
    with pytest.raises(ValueError, match="git ls-tree failed"):
        frontier.code_digests("0" * 40, shallow)


def _conf_repo(path: Path) -> Callable[..., str]:
    """A git repository at `path` holding this checkout's conf/ and params.yaml in one commit; its git()."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, text=True).stdout

    shutil.copytree(ROOT / "conf", path / "conf")
    shutil.copy(ROOT / "params.yaml", path / "params.yaml")
    git("init", "-q")
    git("config", "user.name", "t")
    git("config", "user.email", "t@localhost")
    git("add", ".")
    git("commit", "-q", "-m", "conf")
    return git


def test_a_conf_change_stales_only_the_groups_whose_params_it_changes(tmp_path: Path) -> None:
    """What each group composes from conf/ at a commit, against this checkout's: a comment or another preset's
    change leaves a group's params.yaml as it was, a change to its own preset does not; a commit the clone does
    not hold composes nothing."""
    git = _conf_repo(tmp_path)
    groups = ("default", "p99", "kb4")
    recorded = frontier.composed_digests(groups, git("rev-parse", "HEAD").strip(), tmp_path)
    assert all(recorded.values()) and recorded == frontier.composed_digests(groups, None, tmp_path)
    kb4 = tmp_path / "conf" / "combine" / "kb4.yaml"
    kb4.write_text(kb4.read_text() + "# a comment changes no params\n")  # (the first line is Hydra's header)
    assert frontier.composed_digests(groups, None, tmp_path) == recorded
    kb4.write_text(kb4.read_text().replace("amount: 0.88", "amount: 0.87"))
    now = frontier.composed_digests(groups, None, tmp_path)
    assert [g for g in groups if now[g] != recorded[g]] == ["kb4"]
    assert frontier.composed_digests(groups, "0" * 40, tmp_path) == {g: "" for g in groups}
    rows = [{"commit": "abc1234 + def5678", "groups": "default + kb4"}, {"commit": "abc1234", "groups": "p99"}]
    assert frontier.row_groups(rows, "abc1234") == {"default", "kb4", "p99"}
    assert frontier.row_groups(rows, "def5678") == {"default", "kb4"}
    assert frontier.row_groups([*rows, {"commit": "abc1234", "groups": ""}], "abc1234") == set()  # cannot tell


def test_points_of_groups_a_preset_change_left_alone_stay_current(tmp_path: Path) -> None:
    """After a commit that changes one preset, the points an earlier commit recorded are still what the code gives
    for every other group (not run again, kept in the table, the dense model's among them), not for the changed
    preset's group; where code beside conf/ changed, for none."""
    git = _conf_repo(tmp_path)
    before = git("rev-parse", "--short=7", "HEAD").strip()
    kb4 = tmp_path / "conf" / "combine" / "kb4.yaml"
    kb4.write_text(kb4.read_text().replace("amount: 0.88", "amount: 0.87"))
    git("commit", "-q", "-am", "kb4")
    after = git("rev-parse", "--short=7", "HEAD").strip()
    code = frontier.code_digests(after, tmp_path)
    pts = [{"experiment": f"frontier-{g}-0", "method": "dense", "commit": c, "machine": "cpu"}
           for g, c in (("p99", before), ("kb4", before), ("s8", "0" * 7))]
    recorded = {"code": {before: frontier.code_digests(before, tmp_path), "0" * 7: {**code, "bignn/": "x"}},
                "points": pts}
    assert recorded["code"][before] != code  # conf/ differs
    assert frontier.current_groups(recorded, code, after, tmp_path) == {before: ["p99"], "0" * 7: []}
    assert frontier.recorded_here(recorded, code, "cpu", after, tmp_path) == {"frontier-p99-0"}
    kept, _ = frontier.earlier_parts({"frontier-kb4-0"}, code, "cpu", recorded, after, tmp_path)
    assert [p["experiment"] for p in kept] == ["frontier-p99-0"]
    assert frontier.recorded_here(recorded, code, "other cpu", after, tmp_path) == set()
    # Where the preset's change is undone, its group's points are current again.
    kb4.write_text(kb4.read_text().replace("amount: 0.87", "amount: 0.88"))
    git("commit", "-q", "-am", "kb4 back")
    back = git("rev-parse", "--short=7", "HEAD").strip()
    assert frontier.current_groups(recorded, frontier.code_digests(back, tmp_path), back, tmp_path)[before] == [
        "kb4", "p99"]


def test_collect_records_what_each_group_composed_and_which_groups_gave_each_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of one group over the committed table, in a repo of its own: its rows name that group, the table's
    other rows stay with theirs, and the run records what every group composes from the commit's conf/ beside
    what the carried commits' runs recorded."""
    git = _conf_repo(tmp_path)
    shutil.copytree(ROOT / "metrics", tmp_path / "metrics", ignore=shutil.ignore_patterns("*.png"))
    committed = json.loads((tmp_path / "metrics" / "frontier_run.json").read_text())
    monkeypatch.chdir(tmp_path)
    head = git("rev-parse", "HEAD").strip()
    exp = _exp("frontier-light-0", 0.9, 0.5, 0, 99.4)
    exp["revs"][0]["data"]["metrics"]["metrics/machine.json"] = {"data": {"cpu": "AMD EPYC", "physical_cores": 2}}
    monkeypatch.setattr(frontier, "dvc", lambda *args: json.dumps([{"rev": head, "experiments": [exp]}]))
    monkeypatch.setattr(frontier, "draw", lambda rows, path: None)  # the picture has a test of its own
    rows = frontier.collect()
    run = json.loads((tmp_path / "metrics" / "frontier_run.json").read_text())
    assert run["baseline"] == [head[:7]] and run["composed"][head[:7]] == frontier.composed_digests(frontier.GROUPS)
    assert run["groups"][head[:7]] == ["light"]
    assert {c: run["composed"][c] for c in run["carried"]} == {c: committed["composed"][c] for c in run["carried"]}
    ours = [r for r in rows if r["commit"] == head[:7]]
    assert ours and all(r["groups"] == "light" for r in ours)
    assert {r["groups"] for r in rows if r not in ours} >= {"default", "kb4", "p99"}
    assert "light" not in {g for r in rows if r not in ours for g in r["groups"].split(" + ")}  # replaced
    assert frontier.read_rows(tmp_path / "metrics" / "frontier_sweep.csv") == rows
    # A collect on a later commit of the same pipeline code that measures nothing new: the same table from the
    # recorded points, and no commit named that no experiment ran on.
    (tmp_path / "NOTES").write_text("not pipeline code\n")
    git("add", "NOTES")
    git("commit", "-q", "-m", "notes")
    monkeypatch.setattr(frontier, "dvc", lambda *args: json.dumps([{"rev": "later", "experiments": []}]))
    monkeypatch.setattr(frontier, "machine_metrics", lambda *args: {"cpu": "AMD EPYC", "physical_cores": 2})
    assert frontier.collect() == rows
    again = json.loads((tmp_path / "metrics" / "frontier_run.json").read_text())
    assert again["baseline"] == [head[:7]] and again["groups"] == run["groups"]
