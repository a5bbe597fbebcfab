"""params.yaml from conf/, as `dvc exp run` writes it (not a stage).

    python -m commands params                  # write params.yaml and docs/params.md from conf/
    python -m commands params -S prune=p99     # the same with a preset, or -S prune.amount=0.9
    python -m commands params --check          # exit 1 if params.yaml or docs/params.md is not what conf/ gives

conf/config.yaml holds every param and its why; conf/<section>/<name>.yaml are presets a `-S section=name`
picks. With Hydra composition on (.dvc/config), every `dvc exp run` composes params.yaml from them with its
`-S` overrides; this command runs the same composition (DVC's own function), so a `dvc repro` reads the same
params, and checks the result against the typed config before anything is written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from bignn import paths
from bignn.config import params_from_dict
from bignn.io import atomic_write_bytes
from bignn.runtime import cli


def presets(conf_dir: Path = paths.CONF_DIR) -> dict[str, list[str]]:
    """Each preset group (a folder of conf/) and the names `-S group=name` takes."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(conf_dir.iterdir()) if d.is_dir()}


def compose(overrides: Sequence[str] = (), conf_dir: Path = paths.CONF_DIR) -> str:
    """params.yaml's text for these Hydra overrides, as `dvc exp run -S ...` writes it; a bad override or a
    composed value the config refuses raises ValueError naming it."""
    from dvc.utils.hydra import compose_and_dump  # DVC's composition, so the bytes are the ones it writes
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not (conf_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{conf_dir / 'config.yaml'}: no Hydra config to compose params.yaml from")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        try:
            compose_and_dump(out, str(conf_dir.resolve()), None, "config", str(Path.cwd()), list(overrides))
        except (HydraException, OmegaConfBaseException) as exc:
            known = "; ".join(f"{group}: {', '.join(names)}" for group, names in presets(conf_dir).items())
            raise ValueError(f"-S {' '.join(overrides)}: {str(exc).splitlines()[0]} (presets: {known})") from exc
        text = out.read_text(encoding="utf-8")
    params_from_dict(yaml.safe_load(text))  # ConfigError names the key
    return text


PARAMS_DOC = Path("docs/params.md")
SECTIONS_WITH_PRESETS = ("prune", "combine")
DOC_HEAD = """# Params

<!-- Generated from conf/ by `python -m commands params`; edit the comments there, not this page. -->

Every stage reads `params.yaml`. It is composed from `conf/` (Hydra, as DVC's
[Hydra composition](https://dvc.org/doc/user-guide/experiment-management/hydra-composition) does it):
`conf/config.yaml` holds every key with a comment on why, and each folder of `conf/` is a group of named
presets for one section. Every `dvc exp run` composes `params.yaml` afresh, with its `-S` flags as overrides:
`-S prune=p99` picks a preset, `-S prune.amount=0.9` sets one key, and both can be given. To change a default,
edit `conf/` and run `python -m commands params` (the same composition, written for `dvc repro`, and this
page; `--check` says whether both are up to date, and the tests check the committed ones). An edit made in
`params.yaml` alone lasts until the next `dvc exp run`.

All keys are validated before any work: an unknown key, a wrong type, an out-of-range value, a missing
section or a malformed file stops the stage with one line naming the key and what is allowed, e.g.
`error: prune.amount must be a number in [0, 1), got 1.5`.
"""


def commented_keys(text: str, prefix: str = "") -> dict[str, str]:
    """Each key of a conf/ file (dotted, under `prefix`) and the comment lines just above it, joined.

    A key that holds a mapping and has a comment of its own (distill.student) is one entry; `defaults` (Hydra's
    list) is not a param."""
    out: dict[str, str] = {}
    comment: list[str] = []
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        m = re.match(r"^( *)([A-Za-z_]\w*):", line)
        if not m:
            comment = [] if not stripped else comment
            continue
        indent, key = len(m.group(1)), m.group(2)
        stack = [(i, k) for i, k in stack if i < indent]
        parents = [k for _, k in stack]
        if key != "defaults" and not any(out.get(prefix + ".".join(parents[:j + 1]))  # a commented mapping
                                         for j in range(len(parents))):
            out[prefix + ".".join([*parents, key])] = " ".join(comment)
        stack.append((indent, key))
        comment = []
    # A section heading without a comment of its own is no entry; its keys are.
    return {k: v for k, v in out.items() if v or not any(o.startswith(k + ".") for o in out)}


def key_docs(conf_dir: Path = paths.CONF_DIR) -> dict[str, str]:
    """Every param's comment: conf/config.yaml, and each preset section's conf/<section>/default.yaml."""
    docs = commented_keys((conf_dir / "config.yaml").read_text(encoding="utf-8"))
    for section in SECTIONS_WITH_PRESETS:
        del docs[section]
        docs.update(commented_keys((conf_dir / section / "default.yaml").read_text(encoding="utf-8"), f"{section}."))
    return docs


def _value(raw: dict, key: str) -> str:
    for part in key.split("."):
        raw = raw[part]
    return json.dumps(raw) if isinstance(raw, (dict, list, bool)) else str(raw)


def _header(path: Path) -> str:
    """A preset file's first comment paragraph (Hydra's `# @package` directive is not prose)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def params_doc(conf_dir: Path = paths.CONF_DIR) -> str:
    """docs/params.md: the presets and every key with its default (the composed params.yaml) and its why."""
    raw = yaml.safe_load(compose(conf_dir=conf_dir))
    docs = key_docs(conf_dir)
    missing = sorted(key for key in _leaves(raw, docs) if not docs.get(key))
    if missing:
        raise ValueError(f"{conf_dir}: key {missing[0]} has no comment (each key says why it is what it is)")
    rows = ["| preset | what it is | file |", "|---|---|---|"]
    for group, names in presets(conf_dir).items():
        for name in names:
            path = conf_dir / group / f"{name}.yaml"
            where = Path(conf_dir.name, group, f"{name}.yaml").as_posix()
            rows.append(f"| `-S {group}={name}` | {_header(path)} | `{where}` |")
    keys = ["| key | default | why |", "|---|---|---|"]
    keys += [f"| `{key}` | `{_value(raw, key)}` | {docs[key]} |" for key in docs]
    return "\n".join([DOC_HEAD, "## Presets", "", *rows, "", "## Keys", "", *keys]) + "\n"


def _leaves(raw: dict, docs: dict[str, str], prefix: str = "") -> list[str]:
    """The params' keys as the page lists them: a mapping with a comment of its own (distill.student) is one."""
    out = []
    for key, value in raw.items():
        if isinstance(value, dict) and not docs.get(prefix + key):
            out += _leaves(value, docs, f"{prefix}{key}.")
        else:
            out.append(prefix + key)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m commands params", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-S", dest="overrides", action="append", default=[], metavar="OVERRIDE",
                    help="a Hydra override, as `dvc exp run -S` takes it: prune=p99, prune.amount=0.9")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if params.yaml differs")
    args = ap.parse_args(argv)
    text = compose(args.overrides)
    # docs/params.md is this project's page: a copy of the pipeline without docs/ (the tests' tiny repos) has
    # only params.yaml to write.
    outputs = [(paths.PARAMS_FILE, text)] + ([(PARAMS_DOC, params_doc())] if PARAMS_DOC.parent.is_dir() else [])
    if args.check:
        for path, want in outputs:
            if not path.exists() or path.read_text(encoding="utf-8") != want:
                print(f"{path} is not what {paths.CONF_DIR}/ gives: run `python -m commands params`", file=sys.stderr)
                sys.exit(1)
        return
    for path, content in outputs:
        atomic_write_bytes(path, content.encode("utf-8"))
    print(f"wrote {paths.PARAMS_FILE} from {paths.CONF_DIR}/" + (f" with {' '.join(args.overrides)}"
                                                                 if args.overrides else ""))


if __name__ == "__main__":
    cli(main)
