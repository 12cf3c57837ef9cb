"""Probes that check an identity judge measures identity, rendered by a data set's generator.

Three kinds of pairs, each an image of one test person and a second render under the SAME nuisance (pose,
light, background, clothes) and, except for the counterfactuals, the same attributes:

- ``cf:<Attribute>``: the exact counterfactual of the same person with that attribute flipped (must pass);
- ``geometry_swap``: another person's face geometry (face shape, hair shape, eyes, nose, brows, mouth) with
  this person's colours (skin tone, hair, iris, lips) (must fail);
- ``full_swap``: every identity factor from another person (must fail).

Only data sets with a renderer (``SynthFacesDataset``) have probes; the pass rates go into evaluators.yaml.
"""

from __future__ import annotations

import torch

from datamodules.base import uint8_to_float
from datamodules.synthfaces.datamodule import SynthFacesDataset, render_chunked, take_factors
from datamodules.synthfaces.render import ATTRIBUTES, IDENTITY_COLOURS, IDENTITY_FACTORS

#: identity factors a geometry swap keeps (the colours); every other identity factor is the geometry
COLOUR_FACTORS: tuple[str, ...] = ("skin_tone", *IDENTITY_COLOURS)
GEOMETRY_FACTORS: tuple[str, ...] = tuple(f for f in IDENTITY_FACTORS if f not in COLOUR_FACTORS)


def mix_identities(own: dict[str, torch.Tensor], donor: dict[str, torch.Tensor],
                   keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """``own`` identity factors with the factors named in ``keys`` taken from ``donor`` (same batch size)."""
    return {k: (donor[k] if k in keys else v).clone() for k, v in own.items()}


def donors(identity: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each image, the position of an image of ANOTHER identity in the same batch (B,) -> (B,)."""
    n = identity.numel()
    if torch.unique(identity).numel() < 2:
        raise ValueError("identity probes need at least two identities")
    pick = torch.randint(n, (n,), generator=generator)
    for _ in range(100):
        same = identity[pick] == identity
        if not same.any():
            return pick
        pick[same] = torch.randint(n, (int(same.sum()),), generator=generator)
    raise RuntimeError("could not draw a different identity for every probe")


@torch.no_grad()
def render_probes(dataset: SynthFacesDataset, max_images: int = 500, seed: int = 0
                  ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Probe pairs of ``dataset``'s images: ``{kind: (first, second)}``, each float (N, 3, H, W) in [-1, 1].

    Uses the first ``max_images`` images of a seeded permutation; kinds as in the module docstring.
    """
    g = torch.Generator().manual_seed(seed)
    n = min(max_images, len(dataset))
    pos = torch.randperm(len(dataset), generator=g)[:n]
    world, size = dataset.world, dataset.resolution
    gidx = dataset.global_index[pos]
    ident, nuis, attrs = take_factors(world.ident, gidx), take_factors(world.nuis, gidx), world.attrs[gidx]

    def draw(idn: dict[str, torch.Tensor], a: torch.Tensor) -> torch.Tensor:
        return uint8_to_float(render_chunked(idn, nuis, a, size))

    base = draw(ident, attrs)
    other = take_factors(ident, donors(world.identity[gidx], g))
    probes = {}
    for i, name in enumerate(ATTRIBUTES):
        flipped = attrs.clone()
        flipped[:, i] = 1 - flipped[:, i]
        probes[f"cf:{name}"] = (base, draw(ident, flipped))
    probes["geometry_swap"] = (base, draw(mix_identities(ident, other, GEOMETRY_FACTORS), attrs))
    probes["full_swap"] = (base, draw(other, attrs))
    return probes


@torch.no_grad()
def probe_similarities(model: torch.nn.Module, probes: dict[str, tuple[torch.Tensor, torch.Tensor]],
                       batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Cosine similarity of each probe pair under ``model`` (images -> unit embeddings): {kind: (N,)}."""
    model.eval()

    def embed(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])

    cache: dict[int, torch.Tensor] = {}
    out = {}
    for kind, (a, b) in probes.items():
        if id(a) not in cache:
            cache[id(a)] = embed(a)
        out[kind] = (cache[id(a)] * embed(b)).sum(1)
    return out


def probe_pass_rates(sims: dict[str, torch.Tensor], threshold: float) -> dict[str, float]:
    """Share of each kind's pairs judged the same person (similarity above ``threshold``)."""
    return {kind: float((s > threshold).double().mean()) for kind, s in sims.items()}


def probe_threshold(sims: dict[str, torch.Tensor], steps: int = 4001) -> float:
    """The threshold of ``probe_equal_error``."""
    return probe_equal_error(sims, steps)[0]


def probe_equal_error(sims: dict[str, torch.Tensor], steps: int = 4001) -> tuple[float, float]:
    """(threshold, error): the equal-error threshold of VAL probes: the cosine that minimises the larger of the
    worst attribute's counterfactual fail rate and the swaps' (geometry or full) pass rate (the middle of the best
    range when several cosines tie). Calibrated on val, reported on test."""
    grid = torch.linspace(-1, 1, steps, dtype=torch.float64)
    cf_fail = torch.stack([(s.double()[None] <= grid[:, None]).double().mean(1)
                           for k, s in sims.items() if k.startswith("cf:")]).amax(0)
    swap_pass = torch.stack([(sims[k].double()[None] > grid[:, None]).double().mean(1)
                             for k in ("geometry_swap", "full_swap")]).amax(0)
    err = torch.maximum(cf_fail, swap_pass)
    best = torch.nonzero(err == err.min()).squeeze(1)
    # the middle of a tie (a gap between the two distributions)
    return float(grid[best[len(best) // 2]]), float(err.min())
