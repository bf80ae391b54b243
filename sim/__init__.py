"""Benchmark tasks on MuJoCo (Meta-World v3), scripted experts, demonstration datasets."""
