"""HTTP: the app factory and one sub-package per dialect. Routers only translate."""
