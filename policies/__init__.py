"""Torch models and training (tokenizer, VLA policy), ONNX export, TensorRT engine building."""
