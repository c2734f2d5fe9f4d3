"""Marionette's engine: motion extraction, the streaming student model, avatars, training."""
