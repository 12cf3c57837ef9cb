"""Pretrained identity backend for real faces: dlib's 128-d face descriptor (ResNet, 99.38 % on LFW).

Optional extra ``pip install -e .[dlib]`` (``dlib-bin`` + ``face_recognition_models``: the model files ship inside
the wheel, nothing is fetched at run time). Used by default on real data sets when installed
(``identity_backend: auto``); the embedded synthetic set keeps the suite's own trained encoder, since dlib was
trained on photographs.

Per image: dlib's HOG face detector (image upsampled to at least 256 px), 5-point landmarks, aligned 150 px chip,
the ResNet descriptor; where no face is found, the central box of the (face-centred, aligned) crop is used and
counted in ``missed``. Embeddings are L2-normalised so that identity similarity is a cosine, as for the trained
encoder; the match threshold is calibrated the same way (FAR=1e-3 on different-identity test pairs).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from datamodules.base import FaceDataModule, float_to_uint8
from datamodules.cache import atomic_write_bytes, cache_root, config_hash

log = logging.getLogger(__name__)

BACKEND_NAME = "dlib-resnet128"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def dlib_model_dir() -> Path | None:
    """The folder holding face_recognition_models' .dat files, or None when dlib or the models are missing.

    Located without importing face_recognition_models, whose __init__ needs pkg_resources (gone from recent
    setuptools).
    """
    if importlib.util.find_spec("dlib") is None:
        return None
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return folder if (folder / LANDMARKS_FILE).is_file() and (folder / DESCRIPTOR_FILE).is_file() else None


def dlib_available() -> bool:
    return dlib_model_dir() is not None


class DlibFaceEmbedder(nn.Module):
    """images (B, 3, H, W) float in [-1, 1] -> unit dlib descriptors (B, 128) float32 on the images' device.

    Not differentiable (dlib runs on the CPU through NumPy). ``missed`` counts images where no face was detected.
    """

    def __init__(self, min_size: int = 256) -> None:
        super().__init__()
        folder = dlib_model_dir()
        if folder is None:
            raise ImportError("the dlib identity backend needs the optional extra: pip install -e '.[dlib]' "
                              "(dlib-bin and face_recognition_models)")
        import dlib

        self.min_size = min_size
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        self._descriptor = dlib.face_recognition_model_v1(str(folder / DESCRIPTOR_FILE))
        self.missed = 0
        self.seen = 0

    def __deepcopy__(self, memo: dict) -> DlibFaceEmbedder:
        # dlib's detector and networks are fixed, shipped weights that cannot be copied; sharing them is exact
        return self

    def _embed_one(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        faces = self._detector(image, 0)
        if len(faces):
            box = max(faces, key=lambda r: r.area())
        else:
            self.missed += 1
            import dlib

            box = dlib.rectangle(w // 8, h // 8, w - 1 - w // 8, h - 1 - h // 8)
        shape = self._landmarks(image, box)
        return np.asarray(self._descriptor.compute_face_descriptor(image, shape), dtype=np.float32)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.detach().float().cpu()
        if x.shape[-1] < self.min_size:
            x = F.interpolate(x, size=(self.min_size, self.min_size), mode="bilinear", align_corners=False,
                              antialias=False)
        pixels = float_to_uint8(x).permute(0, 2, 3, 1).contiguous().numpy()
        out = np.stack([self._embed_one(np.ascontiguousarray(p)) for p in pixels])
        self.seen += len(out)
        return F.normalize(torch.from_numpy(out), dim=1).to(images.device)


def dlib_identity_report(dm: FaceDataModule, far: float = 1e-3, max_images: int = 3000, seed: int = 0):
    """The dlib backend with its verification quality on ``dm``'s test identities (cached as JSON).

    Without identity labels the threshold (and so id_match) is NaN; id_sim is still reported.
    """
    from evaluators.identity_encoder import IdentityReport, verification

    dm.setup()
    model = DlibFaceEmbedder().eval()
    test = dm.dataset("test")
    ids = torch.as_tensor(getattr(test, "identity", np.full(len(test), -1)))
    settings = {"kind": "identity_dlib", "data": dm.config_key(), "far": far, "max_images": max_images,
                "seed": seed, "version": 1}
    path = Path(cache_root()) / "evaluators" / f"identity_dlib-{config_hash(settings)}.json"
    labels = "identity_CelebA.txt" if "celeba" in dm.name else "identity labels"
    rule = f"FAR={far:g} on test different-identity pairs"
    if path.is_file():
        meta = json.loads(path.read_text())
    elif (ids < 0).all():
        log.warning("%s has no identity labels: the dlib backend reports id_sim but no id_match (give %s)",
                    dm.name, labels)
        meta = {"roc_auc": float("nan"), "tar_at_far": float("nan"), "threshold": float("nan")}
        rule = f"none: {dm.name} has no identity labels ({labels}), so id_match and success are NaN"
    else:
        g = torch.Generator().manual_seed(seed)
        labelled = torch.nonzero(ids >= 0).flatten()
        pick = labelled[torch.randperm(len(labelled), generator=g)[:max_images]].sort().values
        embs = [model(torch.stack([test[int(i)]["image"] for i in chunk])) for chunk in pick.split(64)]
        meta = verification(torch.cat(embs), ids[pick], far)
        meta["missed_faces"] = model.missed
        atomic_write_bytes(path, json.dumps(meta, indent=1).encode())
        log.info("dlib identity backend on %d test images: ROC AUC %.4f, TAR@FAR=%g %.4f, %d faces not detected",
                 len(pick), meta["roc_auc"], far, meta["tar_at_far"], model.missed)
    return IdentityReport(model, meta["roc_auc"], meta["tar_at_far"], meta["threshold"], far, str(path),
                          backend=BACKEND_NAME, threshold_rule=rule)


__all__ = ["BACKEND_NAME", "DlibFaceEmbedder", "dlib_available", "dlib_identity_report"]
