"""Training: datasets, autoencoder, teacher, distillation, evaluation."""
