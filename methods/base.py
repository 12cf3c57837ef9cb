"""The editing contract every method subclasses, and the registry that names methods.

A method is a ``LightningModule``: ``trainer.fit(method, datamodule)`` trains it (when it needs training),
``method.edit(...)`` edits a batch. Images are float32 (B, 3, H, W) in [-1, 1]; attributes are float32
(B, K) in {0, 1}, column k named ``method.attribute_names[k]`` (CelebA names).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

_REGISTRY: dict[str, type[EditingMethod]] = {}

#: the editing modes a method can declare: ``latent`` edits from the target labels alone (label-driven, the
#: method's own latent/label path); ``reference`` takes the target attribute from exemplar images
EDIT_MODES: tuple[str, ...] = ("latent", "reference")


class EditingMethod(L.LightningModule):
    """Base class of every editing method.

    Capability flags (class attributes) tell the harness and the runner what a method can do:
        multi_attribute:  one model edits every attribute in ``attribute_names``; False: a model knows one
                          attribute, and the runner trains one per scored attribute (as a config's
                          ``per_attribute: true`` asks of a multi-attribute method)
        supports_strength: ``strength`` scales the edit (1.0 = the method's nominal edit)
        reference_guided: ``edit`` can take ``reference`` exemplars
        needs_reference:  ``edit`` requires ``reference`` exemplars (the harness supplies seeded ones)
        needs_training:   ``trainer.fit`` must run before ``edit`` is meaningful
        synthetic_only:   only works on data sets with exact counterfactuals (the oracle)

    Editing modes: ``edit_modes`` names the modes the method is scored in, each as its own row, the first being
    its default (see ``EDIT_MODES``). A class that does not declare it gets one from the flags above:
    ``("reference",)`` if ``needs_reference``, ``("latent", "reference")`` if ``reference_guided``, else
    ``("latent",)``. A declared tuple sets the flags in turn (``reference_guided`` = "reference" is among them,
    ``needs_reference`` = it is the only one). The harness passes ``reference`` only in reference mode.
    """

    method_name: ClassVar[str] = ""
    multi_attribute: ClassVar[bool] = True
    supports_strength: ClassVar[bool] = False
    reference_guided: ClassVar[bool] = False
    needs_reference: ClassVar[bool] = False
    needs_training: ClassVar[bool] = True
    synthetic_only: ClassVar[bool] = False
    edit_modes: ClassVar[tuple[str, ...]] = ("latent",)
    #: the method has a generator of its own and can edit its own samples (the GAN-sample protocol,
    #: evaluators/gan_samples.py): it implements ``sample_codes``, ``render_codes`` and ``edit_codes``
    edits_own_samples: ClassVar[bool] = False
    #: a named variant (another objective or architecture) of the registered method ``variant_of``: it lives in
    #: that method's package, and its configs in ``configs/<variant name>/`` there (see ``config_path``)
    variant_of: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "edit_modes" in cls.__dict__:
            modes = tuple(cls.edit_modes)
            unknown = [m for m in modes if m not in EDIT_MODES]
            if not modes or unknown or len(set(modes)) != len(modes):
                raise TypeError(f"{cls.__name__}.edit_modes must be distinct names among {EDIT_MODES}, got {modes}")
            cls.edit_modes = modes
            cls.reference_guided = "reference" in modes
            cls.needs_reference = modes == ("reference",)
        elif cls.needs_reference:
            cls.edit_modes = ("reference",)
        elif cls.reference_guided:
            cls.edit_modes = ("latent", "reference")
        else:
            cls.edit_modes = ("latent",)

    @classmethod
    def check_mode(cls, mode: str | None) -> str:
        """``mode`` validated against ``edit_modes`` (None = the default, the first declared mode)."""
        if mode is None:
            return cls.edit_modes[0]
        if mode not in cls.edit_modes:
            raise ValueError(f"{cls.method_name or cls.__name__} edits in modes {cls.edit_modes}, not {mode!r}")
        return mode

    def __init__(self, attribute_names: Sequence[str], image_size: int = 64) -> None:
        super().__init__()
        if not attribute_names:
            raise ValueError("a method needs at least one attribute name")
        if not self.multi_attribute and len(attribute_names) != 1:
            raise ValueError(f"{self.method_name or type(self).__name__} edits one attribute per model "
                             f"(multi_attribute = False), got {list(attribute_names)}; train one model per attribute")
        self.attribute_names = list(attribute_names)
        self.image_size = int(image_size)

    # -- the contract --------------------------------------------------------------------------------
    def edit(
        self,
        images: torch.Tensor,
        src_attrs: torch.Tensor,
        tgt_attrs: torch.Tensor,
        strength: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Edit ``images`` from ``src_attrs`` to ``tgt_attrs``.

        images:    (B, 3, H, W) float in [-1, 1]
        src_attrs: (B, K) float in {0, 1}, the images' (annotated) attributes
        tgt_attrs: (B, K) float in {0, 1}, the wanted attributes
        strength:  scales the edit where ``supports_strength`` (0 = no edit, 1 = nominal)
        reference: (B, 3, H, W) exemplars that have ``tgt_attrs``, for reference-guided methods
        returns:   (B, 3, H, W) float in [-1, 1], same dtype and device as ``images``
        """
        raise NotImplementedError

    def bind_datamodule(self, datamodule: Any) -> None:
        """Called by the harness before editing; only reference points that read the data set use it."""

    # -- the GAN-sample protocol (only where ``edits_own_samples``; see evaluators/gan_samples.py) ---------
    def sample_codes(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` latent codes (n, ...) of the method's own generator, drawn with ``generator`` (seeded, CPU)."""
        raise NotImplementedError(f"{self.method_name} does not edit its own samples")

    def render_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, ...) -> images (B, 3, H, W) in [-1, 1] (deterministic in eval mode)."""
        raise NotImplementedError(f"{self.method_name} does not edit its own samples")

    def edit_codes(self, codes: torch.Tensor, src_attrs: torch.Tensor, tgt_attrs: torch.Tensor,
                   strength: float = 1.0) -> torch.Tensor:
        """Move codes (B, ...) of samples read as ``src_attrs`` (B, K) towards ``tgt_attrs`` (B, K), {0, 1}."""
        raise NotImplementedError(f"{self.method_name} does not edit its own samples")

    # -- helpers shared by every method -----------------------------------------------------------------
    def attribute_index(self, name: str) -> int:
        try:
            return self.attribute_names.index(name)
        except ValueError:
            raise ValueError(
                f"{self.method_name or type(self).__name__} was trained on {self.attribute_names}, not {name!r}"
            ) from None

    def check_edit_inputs(
        self, images: torch.Tensor, src_attrs: torch.Tensor, tgt_attrs: torch.Tensor,
        reference: torch.Tensor | None = None,
    ) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        b, k = images.shape[0], len(self.attribute_names)
        for name, a in (("src_attrs", src_attrs), ("tgt_attrs", tgt_attrs)):
            if a.shape != (b, k):
                raise ValueError(f"{name} must be ({b}, {k}) for attributes {self.attribute_names}, "
                                 f"got {tuple(a.shape)}")
        if self.needs_reference and reference is None:
            raise ValueError(f"{self.method_name} is reference-guided: pass `reference` images")
        if reference is not None and reference.shape != images.shape:
            raise ValueError(f"reference must match images {tuple(images.shape)}, got {tuple(reference.shape)}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["attredit_method"] = self.method_name
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and getattr(dm, "hparams", None):
            # the data set the method was trained on, so scoring can rebuild it from the checkpoint alone
            checkpoint["attredit_data"] = {"class_path": f"{type(dm).__module__}.{type(dm).__qualname__}",
                                           "init_args": {k: v for k, v in dm.hparams.items()
                                                         if not k.startswith("_")}}

    @classmethod
    def capabilities(cls) -> dict[str, bool]:
        """The capability flags by name (``edit_modes`` is read directly: it is a tuple, not a flag)."""
        return {k: bool(getattr(cls, k)) for k in (
            "multi_attribute", "supports_strength", "reference_guided", "needs_reference",
            "needs_training", "synthetic_only", "edits_own_samples")}


def register_method(name: str):
    """Class decorator: ``@register_method("l2mgan")`` makes the method findable by name."""

    def wrap(cls: type[EditingMethod]) -> type[EditingMethod]:
        if not issubclass(cls, EditingMethod):
            raise TypeError(f"{cls.__name__} must subclass EditingMethod")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method name {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.method_name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _discover() -> None:
    """Import every subpackage/module of ``methods`` so their ``@register_method`` decorators run."""
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if info.name not in {"base", "common", "registry"}:
            importlib.import_module(f"methods.{info.name}")


def list_methods() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_method(name: str) -> type[EditingMethod]:
    _discover()
    if name not in _REGISTRY:
        raise KeyError(f"unknown method {name!r}; registered methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def config_path(name: str, preset: str) -> Path:
    """The ``preset`` config (``demo``, ``paper``) of the registered method ``name``: ``configs/<preset>.yaml``
    beside its module, or ``configs/<name>/<preset>.yaml`` for a variant (``variant_of`` set)."""
    cls = get_method(name)
    package = Path(importlib.import_module(cls.__module__).__file__).resolve().parent
    folder = package / "configs" / name if cls.variant_of else package / "configs"
    return folder / f"{preset}.yaml"


def load_method(checkpoint_path: str, map_location: str | torch.device = "cpu") -> EditingMethod:
    """Load any registered method from a Lightning checkpoint (``weights_only=True``)."""
    ckpt = torch.load(checkpoint_path, map_location=map_location, weights_only=True)
    name = ckpt.get("attredit_method")
    if not name:
        raise ValueError(f"{checkpoint_path} is not an attredit-bench method checkpoint (no 'attredit_method')")
    cls = get_method(name)
    return cls.load_from_checkpoint(checkpoint_path, map_location=map_location, weights_only=True)
