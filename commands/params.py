"""params.yaml from conf/, as `dvc exp run` writes it (not a stage).

    python -m commands.params                  # write params.yaml from conf/ (then `dvc repro`)
    python -m commands.params -S prune=p99     # the same with a preset, or -S prune.amount=0.9
    python -m commands.params --check          # exit 1 if params.yaml is not what conf/ composes

conf/config.yaml holds every param and its why; conf/<section>/<name>.yaml are presets a `-S section=name`
picks. With Hydra composition on (.dvc/config), every `dvc exp run` composes params.yaml from them with its
`-S` overrides; this command runs the same composition (DVC's own function), so a `dvc repro` reads the same
params, and checks the result against the typed config before anything is written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from stages.common import paths
from stages.common.config import params_from_dict
from stages.common.io import atomic_write_bytes
from stages.common.runtime import cli


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


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m commands.params", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-S", dest="overrides", action="append", default=[], metavar="OVERRIDE",
                    help="a Hydra override, as `dvc exp run -S` takes it: prune=p99, prune.amount=0.9")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if params.yaml differs")
    args = ap.parse_args(argv)
    text = compose(args.overrides)
    if args.check:
        if not paths.PARAMS_FILE.exists() or paths.PARAMS_FILE.read_text(encoding="utf-8") != text:
            print(f"{paths.PARAMS_FILE} is not what {paths.CONF_DIR}/ composes: run `python -m commands.params`",
                  file=sys.stderr)
            sys.exit(1)
        return
    atomic_write_bytes(paths.PARAMS_FILE, text.encode("utf-8"))
    print(f"wrote {paths.PARAMS_FILE} from {paths.CONF_DIR}/" + (f" with {' '.join(args.overrides)}"
                                                                 if args.overrides else ""))


if __name__ == "__main__":
    cli(main)
