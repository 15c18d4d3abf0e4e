"""Export for the field: prompt bank, distillation, ONNX, INT8, TensorRT, bundle."""
