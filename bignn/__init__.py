"""The library the stages and commands call. Importing any of it reads no file, sets no environment variable
and patches nothing (tests/test_imports.py); the entry points set the process up (bignn.runtime.setup).

Each module is one concept, and imports only the layers below it (tests/test_imports.py keeps it so):
- plumbing: config (the typed params, no defaults: params.yaml has them), kernels (which SIMD paths torch
  may take), matmul (the portable matrix product), runtime (the one set-up call), paths (where the pipeline
  reads and writes), io (atomic writes, checkpoints), live (per-epoch logs)
- the model and its data: data (MNIST, augmentation), model (the CNN), training (the fit loop)
- methods, each a function of a model and its own small config: pruning/ (unstructured: which weights go;
  gradual: when; regrow: RigL; sparse: the kept weights' product), channels (structured pruning), quantize
  (int8), entropy and compression (the compressed file format), export (ONNX)
- measurement: forms (every model file loaded one way), metrics (accuracy, size, speed as flat dicts)
"""
