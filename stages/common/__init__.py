"""Code shared by the stages: config, data, model, training loop, checkpoints, metrics."""
