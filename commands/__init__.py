"""Commands a user runs beside the pipeline, started as `python -m commands <name> [args]` (`--help` on each):
sweep and frontier (runs of `dvc exp`), seeds (one model over several seeds), bench and profile (timings),
compare (two model files on the same test images), filebytes (where a compressed file's bytes go), predict
(one image), tables (the generated tables of README and docs/), params (params.yaml and docs/params.md from
conf/), writers (the held-out split by writer). None of them is a DVC stage; they call the library (bignn),
never a stage. Importing this package does nothing.
"""

COMMANDS = ("bench", "compare", "filebytes", "frontier", "params", "predict", "profile", "seeds", "sweep", "tables",
            "writers")
