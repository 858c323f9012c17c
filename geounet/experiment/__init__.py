"""Experiments: configs that name a task, and the runner that trains, evaluates and writes them."""
