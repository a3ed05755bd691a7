"""export stage: one module per format (keras, savedmodel, tflite, onnx), parity checks, `kiln export`.

Every export takes raw uint8 pixels `(N, H, W, C)` of the run's input size (rescaling stays inside the
model), returns float32 class probabilities `(N, K)`, and carries `labels.txt` and `export.json`.
"""

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
