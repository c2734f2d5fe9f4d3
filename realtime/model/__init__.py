"""The student model: DiT, KV cache, sampler, autoencoder, checkpoint I/O."""
