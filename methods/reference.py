"""Reference points scored through the same contract: ``identity`` (no edit) and ``oracle`` (exact edit).

They bound every metric: ``identity`` is the floor of attribute-manipulation accuracy and the ceiling of
identity preservation; ``oracle`` (data sets with exact counterfactuals only) is the best any method can do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from datamodules.base import float_to_uint8
from methods.base import EditingMethod, register_method


@register_method("identity")
class IdentityMethod(EditingMethod):
    """Returns its input unchanged: no edit at all."""

    needs_training = False
    supports_strength = True

    def __init__(self, attribute_names: Sequence[str], image_size: int = 64) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()

    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        return images.clone()


def _image_key(image_uint8: torch.Tensor) -> str:
    return hashlib.blake2b(image_uint8.contiguous().numpy().tobytes(), digest_size=16).hexdigest()


@register_method("oracle")
class OracleMethod(EditingMethod):
    """Returns the exact counterfactual rendered by the data set (embedded synthetic set only).

    It recognises each input image by its exact pixels (a hash of the uint8 image), so it edits any image
    of the data set and refuses anything else. ``strength`` < 1 blends towards the input in pixel space.
    """

    needs_training = False
    synthetic_only = True
    supports_strength = True

    def __init__(self, attribute_names: Sequence[str], image_size: int = 64) -> None:
        super().__init__(attribute_names, image_size)
        self.save_hyperparameters()
        self._datamodule: Any = None
        self._lookup: dict[str, tuple[str, int]] = {}

    def bind_datamodule(self, datamodule: Any) -> None:
        if not getattr(datamodule, "has_counterfactuals", False):
            raise ValueError(f"the oracle needs a data set with exact counterfactuals, not {datamodule.name!r}")
        if list(datamodule.attribute_names) != self.attribute_names:
            raise ValueError(f"oracle built for {self.attribute_names}, data set has {datamodule.attribute_names}")
        self._datamodule = datamodule
        self._lookup = {}
        for split in ("test", "val", "train"):
            ds = datamodule.dataset(split)
            for i in range(len(ds)):
                self._lookup.setdefault(_image_key(ds.images[i]), (split, i))

    def edit(self, images, src_attrs, tgt_attrs, strength=1.0, reference=None):
        self.check_edit_inputs(images, src_attrs, tgt_attrs, reference)
        if self._datamodule is None:
            raise RuntimeError("call oracle.bind_datamodule(datamodule) before editing")
        keys = [_image_key(img) for img in float_to_uint8(images.cpu())]
        missing = [i for i, k in enumerate(keys) if k not in self._lookup]
        if missing:
            raise ValueError(f"the oracle only edits images of its data set; {len(missing)} input(s) are not")
        out = torch.empty_like(images)
        for split in {self._lookup[k][0] for k in keys}:
            rows = [i for i, k in enumerate(keys) if self._lookup[k][0] == split]
            index = torch.tensor([self._lookup[keys[i]][1] for i in rows])
            cf = self._datamodule.counterfactuals(split, index, tgt_attrs[rows].cpu())
            out[rows] = cf.to(images)
        return images + float(strength) * (out - images) if strength != 1.0 else out
