"""Triton kernels for the streaming DiT, each with a PyTorch reference beside it."""
