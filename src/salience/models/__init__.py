"""Backbones (a registry) and the classifier wrapper that exposes features/head/CAMs."""

from salience.models.base import BACKBONES, Backbone, Classifier, ModelOutput, build_backbone

__all__ = ["BACKBONES", "Backbone", "Classifier", "ModelOutput", "build_backbone"]
