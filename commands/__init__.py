"""Commands a user runs beside the pipeline (`python -m commands.<name> --help`): sweep and frontier (runs of
`dvc exp`), seeds (one model over several seeds), distill_study (distilled vs alone students, paired), bench
and profile (timings), filebytes (where a compressed file's bytes go), predict (one image), tables (the
generated tables of README and docs/), params (params.yaml from conf/). None of them is a DVC stage.

`import stages` first: it pins torch's kernels to params.yaml's `kernels` before any command imports torch.
"""

import stages  # noqa: F401
