"""Data for the lab: synthetic toy problems and sklearn's bundled sets, never downloaded.

    from lab.data import load_data
    ds = load_data("spiral", n=600, classes=3, preprocess=("center", "normalize"), seed=0)
"""

from .dataset import DATA_KINDS, Dataset, generate, load_data
from .preprocess import PREPROCESS_STEPS, Preprocessor

__all__ = ["DATA_KINDS", "PREPROCESS_STEPS", "Dataset", "Preprocessor", "generate", "load_data"]
