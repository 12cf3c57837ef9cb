"""Train a method from a LightningCLI YAML config: ``python -m benchmark train --config CONFIG.yaml``.

The config names the method (``model.class_path``), the data set (``data.class_path``) and the trainer. The
method's ``attribute_names`` and ``image_size`` are linked from the data module, so they are set once. A config
with ``per_attribute: true`` trains one model per attribute: ``benchmark run`` gives each unit one attribute, and a
config trained by hand must name one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.cli import LightningCLI

from benchmark.preflight import UserError
from datamodules.base import FaceDataModule
from methods.base import EditingMethod

# Lightning 2.6 prints a code sample whenever a manually optimised module (every GAN here) writes periodic
# checkpoints; the post-step state it warns about is the state the suite means to save (resume continues from it).
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization", category=UserWarning)


class EditingCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (jsonargparse parser)
        parser.link_arguments("data.attribute_names", "model.init_args.attribute_names", apply_on="instantiate")
        parser.link_arguments("data.resolution", "model.init_args.image_size", apply_on="instantiate")
        # documentation only (benchmark/deviations.py): what the config changes relative to the official code
        parser.add_argument("--deviations", type=list[dict[str, Any]] | None, default=None,
                            help="the config's declared deviations from the official code (not used in training)")
        # read by `benchmark run`, which trains one unit per attribute; here it only checks the data's attributes
        parser.add_argument("--per_attribute", type=bool, default=False,
                            help="the method trains one model per attribute (data.init_args.attributes: one name)")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        check_one_attribute(bool(cfg.get("per_attribute")), cfg.get("data.init_args.attributes"))


def check_one_attribute(per_attribute: bool, attributes: Sequence[str] | None) -> None:
    """A per-attribute config trains on exactly one attribute (``benchmark run`` sets it per unit)."""
    if per_attribute and (attributes is None or len(attributes) != 1):
        raise UserError(f"the config says per_attribute: true but data.init_args.attributes is {attributes}; name "
                        "one attribute, or let `python -m benchmark run` train one unit per attribute")


def make_cli(args: Sequence[str] | None = None, run: bool = True) -> EditingCLI:
    """Build (and with ``run=True`` run ``fit``) the CLI; ``args`` like ``["--config", "x.yaml"]``."""
    import methods.base as registry

    registry._discover()  # every method class must be importable by its class_path
    argv = list(args or [])
    if run and (not argv or argv[0] not in {"fit", "validate", "test", "predict"}):
        argv = ["fit", *argv]
    return EditingCLI(
        EditingMethod,
        FaceDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        run=run,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )
