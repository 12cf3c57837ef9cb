"""Shared fixtures: every test runs offline on tiny data it makes itself, with caches in a temp folder."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    # Evaluator and data caches of the test session live in a fresh temp folder, never the user's cache.
    import tempfile

    os.environ["ATTREDIT_CACHE"] = tempfile.mkdtemp(prefix="attredit-test-cache-")


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A tiny synthetic set (30 identities x 6 images, 32 px), set up once per session."""
    from datamodules.synthfaces import SynthFacesDataModule

    dm = SynthFacesDataModule(resolution=32, num_identities=30, images_per_identity=6, batch_size=32,
                              cache_dir=str(tmp_path_factory.mktemp("synth")))
    dm.setup()
    return dm


@pytest.fixture(scope="session")
def bundle(tiny_synth):
    """The evaluators of ``tiny_synth`` with 1-epoch judges, built once per session."""
    from evaluators.suite import EvaluatorConfig, build_evaluators

    return build_evaluators(tiny_synth, EvaluatorConfig(classifier_epochs=1, identity_epochs=1, identity_renders=256,
                                                batch_size=32))
