"""The tasks, one file per family; ``dgm.experiments.registry.TASKS`` names them."""
