"""The pipeline's DVC stages, one module each (`python -m stages.<name>`, see dvc.yaml):
download, train, prune, compress, channel, combine, distill, evaluate, export.

`stages.methods` holds what they do to a model (pruning, regrowth, channels, int8, compression, ONNX);
`stages.common` the plumbing (config, paths, data, model, training loop, checkpoints, metrics, kernels).
The commands a user runs beside the pipeline (sweep, frontier, seeds, bench, profile, predict, ...) live in
the top-level `commands` package.

Importing this package pins torch's kernel libraries to params.yaml's `kernels` before any stage or command
imports torch: `python -m stages.<name>`, `python -m commands.<name>`, DVC's stage processes and the tests all
come through here first.
"""

from stages.common.kernels import mode_in_params, set_switches

set_switches(mode_in_params())
