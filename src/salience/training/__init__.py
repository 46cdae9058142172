"""Training: seeding, checkpoints, the epoch loop."""
