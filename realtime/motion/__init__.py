"""Motion: extraction (MediaPipe), filtering, identity-agnostic normalisation, retargeting
and condition rendering.

The data types and skeleton topology live in `realtime.motion.types`, which imports
nothing heavy: `realtime.model` and `kernels` may use them without MediaPipe.
"""
