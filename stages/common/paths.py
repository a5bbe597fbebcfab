"""Where the stages read and write: the same paths dvc.yaml declares."""

from pathlib import Path

# What every stage reads, and the Hydra config `dvc exp run` composes it from (commands/params.py).
PARAMS_FILE = Path("params.yaml")
CONF_DIR = Path("conf")
MODELS_DIR = Path("models")
DENSE_MODEL = MODELS_DIR / "big_model.pth"
PRUNED_MODEL = MODELS_DIR / "big_model_pruned.pth"
# The pruned model, sparse + quantized + lzma: a format of this pipeline's own (stages/methods/compression.py).
COMPRESSED_MODEL = MODELS_DIR / "big_model_compressed.bin"
# Structured pruning (the channel stage): physically smaller layers, float32 and int8.
CHANNEL_MODEL = MODELS_DIR / "channel.pth"
CHANNEL_INT8_MODEL = MODELS_DIR / "channel_int8.pth"
# The channel model pruned unstructured and compressed (the combine stage), in the compressed format.
COMBINED_MODEL = MODELS_DIR / "combined.bin"
STUDENT_MODEL = MODELS_DIR / "student.pth"
SCRATCH_MODEL = MODELS_DIR / "student_scratch.pth"
# ONNX exports of the dense models (the export stage), checked in onnxruntime.
DENSE_ONNX = MODELS_DIR / "big_model.onnx"
CHANNEL_ONNX = MODELS_DIR / "channel.onnx"
STUDENT_ONNX = MODELS_DIR / "student.onnx"
METRICS_DIR = Path("metrics")
LAYER_SPARSITY = METRICS_DIR / "layer_sparsity.csv"
CHANNEL_METRICS = METRICS_DIR / "channel_prune.json"
COMBINE_METRICS = METRICS_DIR / "combine.json"
PRUNE_METRICS = METRICS_DIR / "prune.json"
COMPRESS_METRICS = METRICS_DIR / "compress.json"
EXPORT_METRICS = METRICS_DIR / "export.json"


def model_metrics(name: str) -> Path:
    """evaluate's metrics of one model (dense, pruned, compressed, channel, ...): metrics/<name>.json."""
    return METRICS_DIR / f"{name}.json"


def errors_csv(name: str) -> Path:
    """evaluate's misclassified test images of one model (actual, predicted): metrics/errors_<name>.csv."""
    return METRICS_DIR / f"errors_{name}.csv"


# Where the timings were taken: CPU, cores, threads, memory.
MACHINE_METRICS = METRICS_DIR / "machine.json"
# `python -m commands.seeds --save`: one model's accuracy over several seeds (README's seed table).
SEEDS_DIR = METRICS_DIR / "seeds"
# evaluate: accuracy, bytes and latency of every model, one row each (dvc plots' scatter of the frontier).
MODELS_FRONTIER_CSV = METRICS_DIR / "frontier.csv"
# The commands: python -m commands.sweep, commands.frontier, commands.bench.
SWEEP_CSV = METRICS_DIR / "sweep.csv"
FRONTIER_SWEEP_CSV = METRICS_DIR / "frontier_sweep.csv"
FRONTIER_PNG = METRICS_DIR / "frontier.png"
# Where and on what the frontier's experiments ran: their baseline commit, the machine, the count.
FRONTIER_JSON = METRICS_DIR / "frontier_run.json"
# Per layer, the nonzero weights of each preset's file (its lowest seed): docs/smallest.md, docs/sparsity-99.md.
FRONTIER_LAYERS_CSV = METRICS_DIR / "frontier_layers.csv"
# python -m commands.distill_study --save: distilled and alone students, paired over seeds and temperatures.
DISTILL_STUDY_JSON = METRICS_DIR / "distill_study.json"
BENCH_JSON = METRICS_DIR / "bench.json"
