"""The attribute classifier's training renders: the same faces with independent uniform attributes, exact renders,
seeded."""

from __future__ import annotations

import numpy as np
import torch

from evaluators.classifier import IndependentAttributeRenders
from evaluators.training import clone_all_attributes


def test_renders_decorrelate_attributes_and_are_the_exact_counterfactuals(tiny_synth):
    full = clone_all_attributes(tiny_synth)
    ds = full.dataset("train")
    items = [ds[i] for i in range(32)]
    labels = []
    collate = IndependentAttributeRenders(ds, seed=5)
    for _ in range(40):
        batch = collate(items)
        labels.append(batch["attrs"])
    a = torch.cat(labels).numpy()                       # (1280, 8) drawn labels
    assert abs(a.mean() - 0.5) < 0.03
    corr = np.corrcoef(a.T)[np.triu_indices(a.shape[1], 1)]
    assert np.abs(corr).max() < 0.12                    # independent (the data's own labels are correlated)
    natural = ds.attrs.numpy()
    sm, mo = full.attribute_names.index("Smiling"), full.attribute_names.index("Mouth_Slightly_Open")
    assert np.corrcoef(natural[:, sm], natural[:, mo])[0, 1] > 0.2
    # each image is the exact render of its face with the drawn labels; the other keys are untouched
    assert torch.equal(batch["image"], ds.counterfactuals(batch["index"], batch["attrs"]))
    assert torch.equal(batch["identity"], torch.stack([it["identity"] for it in items]))
    # seeded: a fresh collate with the same seed draws the same labels
    again = IndependentAttributeRenders(ds, seed=5)(items)
    assert torch.equal(again["attrs"], labels[0])
    assert not torch.equal(IndependentAttributeRenders(ds, seed=6)(items)["attrs"], labels[0])
