"""Training with PyTorch Lightning: the only package that imports Lightning (and MLflow)."""
