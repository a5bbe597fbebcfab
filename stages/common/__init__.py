"""Plumbing the stages and commands share: config, paths, data, model, training loop, checkpoints (io),
metrics, logging (live), and the kernel pinning (kernels, onednn_matmul, runtime)."""
