"""Unstructured pruning: which weights go (unstructured), when (gradual), regrowth (regrow) and the product
of the kept weights while fine-tuning (sparse)."""
