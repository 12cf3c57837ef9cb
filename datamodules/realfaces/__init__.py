"""Shared machinery of the real-photograph data sets (CelebA, CelebA-HQ): parsing, preprocessing cache, splits."""

from datamodules.realfaces.annotations import AnnotationError
from datamodules.realfaces.base import RealFaceDataModule, RealFaceDataset, RealLayout
from datamodules.realfaces.cache import CorruptImageError
from datamodules.realfaces.decode import ResizeSpec

__all__ = ["AnnotationError", "CorruptImageError", "RealFaceDataModule", "RealFaceDataset", "RealLayout",
           "ResizeSpec"]
