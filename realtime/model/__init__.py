"""The student model: DiT, KV cache, sampler, autoencoder, checkpoint I/O.

    config.py       ModelConfig + presets tiny / cpu / gpu; default_preset()
    autoencoder.py  TinyAutoencoder: per-frame encode / decode
    dit.py          StudentDiT: embedders, adaLN-Zero blocks, forward_chunk against
                    the cache, encode_reference for the identity sink
    cache.py        KVCache: preallocated sink + ring window, ring state on device
    sampler.py      sample_chunk: 1-4 Euler flow-matching steps + the cache write
                    ('clean' extra t=0 pass or 'last_step' keys/values)
    dense.py        forward_dense: the whole sequence in one masked pass (the
                    reference streaming is tested against; the training forward)
    bundle.py       AnimationModel: DiT + autoencoder, what a checkpoint holds
    checkpoint.py   save / load / init_checkpoint / load_model (default location,
                    random-init fallback with a warning)

The per-session streaming loop is `realtime.engine.StreamingEngine`. Nothing here
imports MediaPipe (the GPU machine has none).
"""
