"""The training loop, configuration, checkpoints and the experiment runner."""
