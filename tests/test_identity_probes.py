"""The identity probes: what they render, how the threshold is calibrated, and that they catch a colour reader."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from datamodules.synthfaces.render import ATTRIBUTES
from evaluators.identity_probes import (
    donors,
    probe_equal_error,
    probe_pass_rates,
    probe_similarities,
    probe_threshold,
    render_probes,
)


def test_donors_always_pick_another_identity():
    ids = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    for seed in range(20):
        pick = donors(ids, torch.Generator().manual_seed(seed))
        assert (ids[pick] != ids).all()


def test_probes_change_what_they_say(tiny_synth):
    probes = render_probes(tiny_synth.dataset("test"), max_images=24, seed=0)
    assert set(probes) == {f"cf:{a}" for a in ATTRIBUTES} | {"geometry_swap", "full_swap"}
    test = tiny_synth.dataset("test")
    base = probes["full_swap"][0]
    # the base images are the data set's own renders (same person, nuisance, attributes)
    pos = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:24]
    own = torch.stack([test[int(i)]["image"] for i in pos])
    assert torch.allclose(base, own, atol=1e-6)
    # a local edit changes only the pixels inside its region mask; swaps change the face
    masks = test.region_masks(pos)["Smiling"]
    diff = (probes["cf:Smiling"][1] - base).abs().amax(1)
    assert diff[~masks].max() < 1e-6 and diff[masks].max() > 0.1
    for kind in ("geometry_swap", "full_swap"):
        assert ((probes[kind][1] - base).abs().flatten(1).amax(1) > 0.1).float().mean() > 0.9


class MeanColour(torch.nn.Module):
    """A judge that reads colours only: the mean colour of each 8x8 block's centre row (no geometry)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hist = torch.stack([torch.histc(img[c], bins=8, min=-1, max=1) for img in x for c in range(3)])
        return F.normalize(hist.reshape(len(x), -1), dim=1)


def test_probes_expose_a_colour_reader(tiny_synth):
    """Geometry swaps keep the colours, so a colour-histogram judge rates them far closer than full swaps:
    the probe that separates the two tells an identity judge from a colour reader."""
    sims = probe_similarities(MeanColour(), render_probes(tiny_synth.dataset("test"), 24, seed=1))
    assert sims["geometry_swap"].mean() > sims["full_swap"].mean() + 0.02


def test_probe_threshold_is_the_equal_error_point():
    g = torch.Generator().manual_seed(0)
    sims = {f"cf:{a}": 0.8 + 0.2 * torch.rand(400, generator=g) for a in ATTRIBUTES}
    sims["geometry_swap"] = 0.7 * torch.rand(400, generator=g)
    sims["full_swap"] = -0.5 + torch.rand(400, generator=g)
    t = probe_threshold(sims)
    assert 0.7 <= t < 0.8 and abs(t - 0.75) < 0.03  # the middle of the gap
    rates = probe_pass_rates(sims, t)
    assert all(rates[f"cf:{a}"] == 1.0 for a in ATTRIBUTES) and rates["geometry_swap"] == 0.0
    # overlapping distributions: the threshold balances the worst counterfactual against the swaps
    sims["cf:Young"] = 0.5 + 0.5 * torch.rand(400, generator=g)
    t = probe_threshold(sims)
    rates = probe_pass_rates(sims, t)
    assert abs((1 - rates["cf:Young"]) - rates["geometry_swap"]) < 0.03
    th, err = probe_equal_error(sims)
    assert th == t and abs(err - max(1 - rates["cf:Young"], rates["geometry_swap"])) < 1e-9 and 0.05 < err < 0.3


def test_colour_columns_are_the_colour_factors():
    """The judge's colour weighting scales exactly the columns of skin tone and the hair, iris and lip RGB."""
    from evaluators.identity_factors import colour_columns, factor_names
    from evaluators.identity_probes import COLOUR_FACTORS

    mask, names = colour_columns(), factor_names()
    assert mask.shape == (len(names),) and int(mask.sum()) == 10
    assert all(any(n.startswith(c) for c in COLOUR_FACTORS) == bool(m) for n, m in zip(names, mask))
