"""The library the stages and commands call. Importing any of it reads no file, sets no environment variable
and patches nothing (tests/test_imports.py); the entry points set the process up (bignn.runtime.setup).

Each module is one concept and imports only from the layers below its own (tests/test_imports.py, LAYERS):
1. kernels (which SIMD paths torch may take), matmul (the portable matrix product), paths (where the
   pipeline reads and writes), entropy (the coder's models), model (the CNN), data (MNIST, augmentation)
2. config (the typed params; no defaults: conf/ has them), io (atomic writes, checkpoints), live (per-epoch
   logs), runtime (the one set-up call, seeds), training (the fit loop)
3. methods, each a function of a model and its own small config: pruning/ (regrow, sparse: the kept
   weights' product, gradual: when weights go), channels (structured pruning), quantize (int8), compression
   (the compressed file format), download (MNIST's files)
4. pruning/unstructured (which weights go), forms (every model file loaded one way), metrics (accuracy, size,
   speed as flat dicts)
5. recipes (what each training stage computes), export (ONNX, checked against torch)
"""
