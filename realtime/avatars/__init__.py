"""Avatar studio: procedural characters, the synthetic data engine, the built-in gallery.

Modules (import them directly; this package imports nothing, so importing it is free):

- character.py  `Character`, `make_character(seed, **style)`: style + proportions,
                and `.skeleton` in the motion module's format
- render.py     `render(character, pose, size, background, framing)` -> RGBA,
                `render_reference`, `rest_pose`, `Framing` (skia drawing)
- head.py, paint.py   the head/face drawer and shared paint helpers
- motion.py     `ProceduralMotion`, `demo_performer(seed)`: procedural NormalizedMotion
- kinematics.py controls -> bone directions; `pose_to_motion`, `fk`, `to_pose`
                (re-exported by motion.py)
- augment.py    `augment_clip`: jitter, dropped parts, confidence decay
- gallery.py    `names()`, `get(name)`: the built-in characters
- dataset.py    `build`, `iterate_dataset`: the sharded synthetic training set
- cli.py        `marionette avatar list|render|dataset`
"""
