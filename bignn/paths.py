"""Where the pipeline reads and writes: the same paths dvc.yaml declares (names only; no I/O here).

One name per model form, the same in models/, metrics/ and the plots: dense, pruned, compressed, channel,
channel_int8, combined, student. evaluate's metrics of a form are metrics/<form>.json; each stage's own
(seconds, shapes, sizes) metrics/stages/<stage>.json; the per-epoch logs metrics/live/<form>/.
"""

from pathlib import Path

# What every stage reads, and the Hydra config `dvc exp run` composes it from (commands/params.py).
PARAMS_FILE = Path("params.yaml")
CONF_DIR = Path("conf")
MODELS_DIR = Path("models")
DENSE_MODEL = MODELS_DIR / "dense.pth"
PRUNED_MODEL = MODELS_DIR / "pruned.pth"
# The pruned model, sparse + quantized + entropy-coded: a format of this pipeline's own (bignn/compression.py).
COMPRESSED_MODEL = MODELS_DIR / "compressed.bin"
# Structured pruning (the channel stage): physically smaller layers, float32 and int8.
CHANNEL_MODEL = MODELS_DIR / "channel.pth"
CHANNEL_INT8_MODEL = MODELS_DIR / "channel_int8.pth"
# The channel model (or the student) pruned unstructured and compressed (the combine stage).
COMBINED_MODEL = MODELS_DIR / "combined.bin"
STUDENT_MODEL = MODELS_DIR / "student.pth"
# ONNX exports of the dense models (the export stage), checked in onnxruntime.
DENSE_ONNX = MODELS_DIR / "dense.onnx"
CHANNEL_ONNX = MODELS_DIR / "channel.onnx"
STUDENT_ONNX = MODELS_DIR / "student.onnx"
# Every model file evaluate measures, by form name.
MODEL_FILES = {"dense": DENSE_MODEL, "pruned": PRUNED_MODEL, "compressed": COMPRESSED_MODEL, "channel": CHANNEL_MODEL,
               "channel_int8": CHANNEL_INT8_MODEL, "combined": COMBINED_MODEL, "student": STUDENT_MODEL}
METRICS_DIR = Path("metrics")
LAYER_SPARSITY = METRICS_DIR / "layers_pruned.csv"


def stage_metrics(stage: str) -> Path:
    """A stage's own metrics: metrics/stages/<stage>.json, every stage's with `stage_seconds` (its main()'s wall
    time, from reading params.yaml to its last write; the interpreter's and torch's import come before it),
    and the shapes or sizes it made."""
    return METRICS_DIR / "stages" / f"{stage}.json"


PRUNE_METRICS = stage_metrics("prune")
COMPRESS_METRICS = stage_metrics("compress")
CHANNEL_METRICS = stage_metrics("channel")
COMBINE_METRICS = stage_metrics("combine")
DISTILL_METRICS = stage_metrics("distill")
EXPORT_METRICS = stage_metrics("export")


def model_metrics(name: str) -> Path:
    """evaluate's metrics of one model form (dense, pruned, compressed, channel, ...): metrics/<name>.json."""
    return METRICS_DIR / f"{name}.json"


def errors_csv(name: str) -> Path:
    """evaluate's misclassified test images of one model (actual, predicted): metrics/errors_<name>.csv."""
    return METRICS_DIR / f"errors_{name}.csv"


def live_dir(name: str) -> Path:
    """The per-epoch log (DVCLive) of the stage that makes model form `name`: metrics/live/<name>/."""
    return METRICS_DIR / "live" / name


# Where the timings were taken: CPU, cores, threads, memory.
MACHINE_METRICS = METRICS_DIR / "machine.json"
# `python -m commands seeds --save`: one model's accuracy over several seeds (README's seed table).
SEEDS_DIR = METRICS_DIR / "seeds"
# evaluate: accuracy, bytes and latency of every model, one row each (dvc plots' scatter of the frontier).
MODELS_FRONTIER_CSV = METRICS_DIR / "frontier.csv"
# The commands: python -m commands sweep, commands frontier, commands bench.
SWEEP_CSV = METRICS_DIR / "sweep.csv"
FRONTIER_SWEEP_CSV = METRICS_DIR / "frontier_sweep.csv"
FRONTIER_PNG = METRICS_DIR / "frontier.png"
# Where and on what the frontier's experiments ran: their baseline commit, the machine, the count.
FRONTIER_JSON = METRICS_DIR / "frontier_run.json"
# Per layer, the nonzero weights of each preset's file (its lowest seed): docs/smallest.md, docs/sparsity-99.md.
FRONTIER_LAYERS_CSV = METRICS_DIR / "frontier_layers.csv"
BENCH_JSON = METRICS_DIR / "bench.json"
