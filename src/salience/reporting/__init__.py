"""Reporting: run directories → tidy CSVs → the papers' tables (CSV + LaTeX) and figures.

Pure functions over DataFrames (docs/conventions.md §7, "Reporting is pure functions"); every path is a CLI
argument (`salience.reporting.cli`).
"""

__all__ = ["aggregate", "figures", "stats", "style", "tables"]
