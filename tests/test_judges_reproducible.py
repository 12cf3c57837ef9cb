"""Two fresh trainings of a judge with the same settings give the same weights and the same reported figures."""

from __future__ import annotations

from evaluators.classifier import get_attribute_classifier
from evaluators.identity_encoder import get_identity_encoder
from evaluators.suite import weights_hash


def test_two_judge_trainings_are_identical(tiny_synth, tmp_path, monkeypatch):
    reports = []
    for run in range(2):
        monkeypatch.setenv("ATTREDIT_CACHE", str(tmp_path / f"cache{run}"))  # a cold cache each time: retrained
        clf = get_attribute_classifier(tiny_synth, epochs=1, batch_size=32, seed=3)
        ident = get_identity_encoder(tiny_synth, epochs=1, batch_size=32, seed=3, renders=256)
        reports.append((weights_hash(clf), clf.test_accuracy, weights_hash(ident), ident.roc_auc, ident.threshold))
    assert reports[0] == reports[1]
    other = get_identity_encoder(tiny_synth, epochs=1, batch_size=32, seed=4, retrain=True, renders=256)
    assert weights_hash(other) != reports[0][2]  # the hash sees the weights (another seed, other weights)
