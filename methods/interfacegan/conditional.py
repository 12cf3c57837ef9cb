"""``interfacegan-cond``: InterFaceGAN's conditional manipulation (Shen et al., CVPR 2020, Sec. 2.2, Fig. 3;
official ``utils/manipulator.py project_boundary``) as its own leaderboard row.

Same module, objective and training as ``interfacegan``; only the edit differs: the normal of each edited
attribute is projected off the normals of the conditioning attributes that are not edited with it
(``InterFaceGAN.directions``: ``n1 - (n1.n2) n2`` normalised for one condition, the least-squares projection
off their span for several), so a linear move changes the edited attribute's signed distance and keeps every
conditioning attribute's. ``conditional_on: all`` (the default, and what the configs say) conditions on every
attribute of the data the model is built on, whatever the preset selects; an empty list is refused, so the
row's name always means what it says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from methods.base import register_method
from methods.interfacegan.module import InterFaceGAN

#: ``conditional_on`` value that names every attribute of the model
ALL_ATTRIBUTES = "all"


@register_method("interfacegan-cond")
class InterFaceGANConditional(InterFaceGAN):
    """InterFaceGAN editing with conditional manipulation: each edit keeps the other attributes' boundaries.

    Args:
        conditional_on: ``"all"`` (every attribute in ``attribute_names``) or a non-empty list of them; the
            other arguments are ``InterFaceGAN``'s. The resolved list is what the checkpoint's hyper-parameters
            record.
    """

    variant_of = "interfacegan"

    def __init__(self, attribute_names: Sequence[str], image_size: int = 64,
                 conditional_on: str | Sequence[str] = ALL_ATTRIBUTES, **kwargs: Any) -> None:
        # rebinding the name matters: save_hyperparameters reads this frame's value, not the base class's
        conditional_on = resolve_conditions(attribute_names, conditional_on)
        super().__init__(attribute_names, image_size, conditional_on=conditional_on, **kwargs)


def resolve_conditions(attribute_names: Sequence[str], conditional_on: str | Sequence[str]) -> list[str]:
    """``conditional_on`` as a list of attribute names: ``"all"`` -> every attribute; empty lists, other
    strings and a model of one attribute (nothing left to keep fixed) are refused with a ValueError."""
    names = list(attribute_names)
    if isinstance(conditional_on, str):
        if conditional_on != ALL_ATTRIBUTES:
            raise ValueError(f"interfacegan-cond: conditional_on must be {ALL_ATTRIBUTES!r} or a list of attribute "
                             f"names, got the string {conditional_on!r}")
        conditions = names
    else:
        conditions = list(conditional_on)
    if not conditions:
        raise ValueError("interfacegan-cond edits by conditional manipulation and needs conditioning attributes: "
                         f"set conditional_on to {ALL_ATTRIBUTES!r} or a non-empty list of {names} (an empty "
                         "list is plain interfacegan: use that method)")
    if len(names) < 2:
        raise ValueError(f"interfacegan-cond needs at least two attributes (got {names}): an edit keeps the other "
                         "attributes fixed, and a single-attribute model has none")
    return conditions
