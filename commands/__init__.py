"""Commands a user runs beside the pipeline (`python -m commands.<name> --help`): sweep and frontier (runs of
`dvc exp`), seeds (one model over several seeds), bench and profile (timings), predict (one image), tables
(README's generated tables). None of them is a DVC stage.

`import stages` first: it pins torch's kernels to params.yaml's `kernels` before any command imports torch.
"""

import stages  # noqa: F401
