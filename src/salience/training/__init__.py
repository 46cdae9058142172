"""Training: the recipe (loop.py) and its steps: set-up (setup.py), one epoch (epoch.py), the
resumable state and checkpoint.pt (state.py), the run's files (outputs.py), seeding (seeding.py)."""
