"""What the stages do to a model, one method per module: unstructured pruning (unstructured, gradual, regrow,
sparse), structured pruning (channels), int8 (quantize), the compressed file format (compression, entropy) and
ONNX export (onnx_model)."""
