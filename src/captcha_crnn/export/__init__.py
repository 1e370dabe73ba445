"""Export to one self-contained ONNX file (network + charset + input policy in its metadata)."""
