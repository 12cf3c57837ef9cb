"""The embedded default data set: procedural faces with exact counterfactuals."""

from datamodules.synthfaces.datamodule import SynthFacesDataModule, SynthFacesDataset
from datamodules.synthfaces.render import ATTRIBUTES, GLOBAL_ATTRIBUTES, LOCAL_ATTRIBUTES

__all__ = ["ATTRIBUTES", "GLOBAL_ATTRIBUTES", "LOCAL_ATTRIBUTES", "SynthFacesDataModule", "SynthFacesDataset"]
