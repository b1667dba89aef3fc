import warnings

import numpy as np
import pytest

from models.audio_metrics.frechet import frechet_distance


def sample(n=2000, d=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)) * np.resize([1.0, 2.0, 0.5, 1.5], d)


def test_identical_sets_are_at_zero():
    a = sample()
    assert abs(frechet_distance(a, a)) < 1e-8


def test_shift_gives_the_squared_mean_difference_and_is_symmetric():
    a = sample()
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(shift @ shift, rel=1e-6)
    b = sample(seed=1)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    distances = [frechet_distance(a, a + k * shift) for k in (0.5, 1.0, 2.0)]
    assert distances[0] < distances[1] < distances[2]


def test_singular_covariances_still_give_a_finite_distance():
    a = sample(n=3, d=8)  # rank 2 covariances
    b = sample(n=3, d=8, seed=2)
    assert np.isfinite(frechet_distance(a, b))


def test_a_root_scipy_warns_about_is_retried_in_silence():
    a = np.random.default_rng(0).standard_normal((2, 4))  # rank 1 covariances, whose product scipy calls singular
    b = np.random.default_rng(2).standard_normal((2, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the retry is the answer, so nothing reaches the user's terminal
        assert np.isfinite(frechet_distance(a, b)) and frechet_distance(a, b) > 0


def test_mismatched_sizes_are_refused():
    with pytest.raises(ValueError):
        frechet_distance(sample(), sample(d=4)[:, :3])
