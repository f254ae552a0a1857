"""Run artifacts: image grids, learning curves and the HTML report."""

from .figures import boxes_grid, image_grid, learning_curves
from .html import write_report

__all__ = ["boxes_grid", "image_grid", "learning_curves", "write_report"]
