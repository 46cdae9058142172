"""Training methods: one small module per method, registered by name in `METHODS`.

Every module in this package is imported by `import_all()`, so adding a method is adding a file.
"""

from salience.methods.base import (
    METHODS,
    LossOutput,
    Method,
    build_method,
    import_all,
    method_class,
)

__all__ = ["METHODS", "LossOutput", "Method", "build_method", "import_all", "method_class"]
