"""Where the stages read and write: the same paths dvc.yaml declares."""

from pathlib import Path

DENSE_MODEL = Path("models/big_model.pth")
PRUNED_MODEL = Path("models/big_model_pruned.pth")
METRICS_DIR = Path("metrics")
TRAIN_LOG = METRICS_DIR / "train_log.csv"
FINETUNE_LOG = METRICS_DIR / "finetune_log.csv"
LAYER_SPARSITY = METRICS_DIR / "layer_sparsity.csv"
PRUNE_METRICS = METRICS_DIR / "prune.json"
