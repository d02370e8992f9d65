"""Localisation of a map on an object mask: three measures, two baselines."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lens.localisation import auc, centred_gaussian, localisation_score, localisation_table, pointing_game
from viz import upsample

MASK = np.zeros((64, 64), bool)
MASK[8:24, 40:56] = True                           # an object in the top right, 1/16 of the image


def test_auc_is_the_roc_area_of_the_upsampled_map_ties_included():
    rng = np.random.default_rng(0)
    for m in (rng.random((8, 8)), rng.integers(0, 3, (4, 4)).astype(float)):     # the second has many ties
        assert auc(m, MASK) == pytest.approx(roc_auc_score(MASK.ravel(), upsample(m, MASK.shape).ravel()), abs=1e-12)


def test_a_map_on_the_object_beats_both_baselines_and_the_centre_is_not_the_object():
    on_object = np.zeros((8, 8))
    on_object[1:3, 5:7] = 1.0                      # the object's cells
    rows = {r["map"]: r for r in localisation_table({"gate": on_object}, MASK)}
    assert list(rows) == ["gate", "centred Gaussian (baseline)", "uniform (baseline)"]
    gate, blob, flat = rows["gate"], rows["centred Gaussian (baseline)"], rows["uniform (baseline)"]
    assert gate["pointing game"] == 1.0 and gate["AUC"] > 0.99 and gate["mass ratio"] > 8
    assert blob["pointing game"] == 0.0 and blob["AUC"] < gate["AUC"] and blob["mass ratio"] < gate["mass ratio"]
    assert flat["mass ratio"] == pytest.approx(1.0) and flat["AUC"] == 0.5 and np.isnan(flat["pointing game"])


def test_measures_on_known_maps():
    assert localisation_score(np.ones((4, 4)), MASK) == pytest.approx(1.0)
    assert np.isnan(localisation_score(np.zeros((4, 4)), MASK))            # no mass: points nowhere
    peak = np.zeros((8, 8))
    peak[6, 1] = 1.0                                                        # bottom left, off the object
    assert pointing_game(peak, MASK) == 0.0 and auc(peak, MASK) < 0.5
    with pytest.raises(ValueError, match="the mask is empty"):
        auc(peak, np.zeros((64, 64), bool))


def test_the_centred_gaussian_peaks_in_the_middle_and_is_symmetric():
    g = centred_gaussian((7, 9))
    assert np.unravel_index(g.argmax(), g.shape) == (3, 4) and g.max() == 1.0       # pixel centres: the middle
    assert g[3, 0] == pytest.approx(np.exp(-((4 / (0.25 * 9)) ** 2) / 2))           # 4 px left, sigma 9 / 4
    np.testing.assert_allclose(g, g[::-1, ::-1])
