"""The feature classifier whose features score generated images (FID, KID, PRDC on dgm's own
classifier, and stacked MNIST's modes): trained by ``dgm.metrics.classifier.RECIPE`` on the
training set at hand (MNIST's 60000 digits when their files are there, in either form;
Fashion-MNIST's 60000 images) and tested on the data set's 10000 test images.

Trained on first use and cached (``dgm.metrics.feature_classifier``); this script reports what
the cache holds or trains it (one to two minutes on one CPU thread per data set).

    DGM_DATA_DIR=../shared/data python benchmarks/classifier.py
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result
from dgm.metrics.classifier import RECIPE, feature_classifier


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["mnist", "fashion_mnist"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, lines = [], []
    for data in args.data:
        model = feature_classifier(data)
        train_size = int(model.source.split("(")[1].split()[0])
        rows.append(
            {
                "data": data,
                "train_size": train_size,
                "source": model.source,
                "test_split": model.test_split,
                "test_accuracy": model.test_accuracy,
                "test_points": model.test_points,
                "train_seconds": round(float(model.train_seconds), 1),
            }
        )
        lines.append(
            f"| {data} | {model.source} | {model.test_split} | {100 * model.test_accuracy:.2f}% "
            f"| {model.train_seconds / 60:.1f} |"
        )
    table = (
        f"dgm's feature classifier (RECIPE: {RECIPE.steps} steps of {RECIPE.batch_size} images, "
        "Adam 1e-3 with a cosine decay, one CPU thread), trained on each data set's training "
        "set and tested on its test set.\n\n"
        "| data | trained on | tested on | test accuracy | train min |\n"
        "| --- | --- | --- | --- | --- |\n" + "\n".join(lines)
    )
    path = write_result("classifier", {"recipe": asdict(RECIPE), "rows": rows}, table)
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
