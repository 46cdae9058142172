"""Pure loss functions (no module state): CAM terms of the CYBORG family and SAGE's terms."""
