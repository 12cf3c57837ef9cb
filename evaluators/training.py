"""How evaluator networks are trained once and cached (atomically) by everything that changes them."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

import lightning as L
import torch

from datamodules.base import FaceDataModule
from datamodules.cache import atomic_torch_save, cache_root, config_hash

log = logging.getLogger(__name__)


def clone_all_attributes(dm: FaceDataModule) -> FaceDataModule:
    """A copy of ``dm`` (same data, same splits) that selects every attribute of the data set."""
    params = inspect.signature(type(dm).__init__).parameters
    kwargs = {}
    for name in params:
        if name in ("self", "attributes"):
            continue
        if hasattr(dm, name):
            kwargs[name] = getattr(dm, name)
        elif name in getattr(dm, "hparams", {}):
            kwargs[name] = dm.hparams[name]
    clone = type(dm)(attributes=None, **kwargs)
    if getattr(dm, "world", None) is not None and hasattr(clone, "world"):
        clone.world = dm.world  # synthfaces: reuse the sampled factors
    clone.setup()
    return clone


def fit_quietly(model: L.LightningModule, dm: L.LightningDataModule | torch.utils.data.DataLoader, epochs: int,
                desc: str, val: torch.utils.data.DataLoader | None = None) -> None:
    """Fit ``model`` for ``epochs`` on ``dm`` (a data module or a train loader, with ``val`` its optional val
    loader) on CPU/GPU (whatever is there) without writing logs or checkpoints."""
    log.info("training %s for %d epochs", desc, epochs)
    trainer = L.Trainer(max_epochs=epochs, accelerator="auto", devices=1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                        deterministic=True)  # reproducible judges: same settings, same weights
    if isinstance(dm, torch.utils.data.DataLoader):
        trainer.fit(model, train_dataloaders=dm, val_dataloaders=val)
    else:
        trainer.fit(model, datamodule=dm)


def cached_evaluator(settings: dict[str, Any], train: Callable[[], tuple[torch.nn.Module, dict]],
                     build: Callable[[dict], torch.nn.Module], retrain: bool = False
                     ) -> tuple[torch.nn.Module, dict, str]:
    """Load the evaluator keyed by ``settings`` from the cache, or ``train`` it and cache it atomically."""
    path = os.path.join(cache_root(), "evaluators", f"{settings['kind']}-{config_hash(settings)}.pt")
    if os.path.exists(path) and not retrain:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            model = build(blob["meta"])
            model.load_state_dict(blob["state_dict"])
            log.info("loaded %s from %s", settings["kind"], path)
            return model, blob["meta"], path
        except Exception as err:  # an unreadable cache is retrained, never trusted
            log.warning("cached evaluator %s unreadable (%s); retraining", path, err)
    model, meta = train()
    atomic_torch_save({"settings": settings, "meta": meta, "state_dict": model.state_dict()}, path)
    return model, meta, path


def adamw_one_cycle(module: L.LightningModule, lr: float, weight_decay: float = 5e-4) -> dict:
    """``configure_optimizers`` of every judge: AdamW + a per-step one-cycle schedule (15% warm-up) over the
    trainer's estimated steps."""
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    steps = int(module.trainer.estimated_stepping_batches)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps, pct_start=0.15), "interval": "step"}}
