"""Evaluation: per-image scores, AUROC overall and per subset, CAM–human agreement."""
