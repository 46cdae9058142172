"""Evaluation: per-image scores, AUROC overall and per subset, CAM–human agreement; DD RQ1's
saliency metrics (maps.py), deletion/insertion curves (faithfulness.py) and per-run scoring (rq1.py)."""
