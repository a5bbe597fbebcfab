"""The pipeline's DVC stages, one module each, started as `python -m stages <name>` (see dvc.yaml):
download, train, prune, compress, channel, combine, distill, evaluate, export.

Each reads params.yaml, sets the process up (bignn.runtime.setup), calls the library (bignn) and writes its
outputs and metrics. No stage imports another. Importing this package does nothing.
"""

STAGES = ("download", "train", "prune", "compress", "channel", "combine", "distill", "evaluate", "export")
