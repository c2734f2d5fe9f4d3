"""Avatar studio: procedural characters, the synthetic data engine, the built-in gallery."""
