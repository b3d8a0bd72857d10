"""Training-time augmentation of image batches (lab/engine/kernels/augment.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from lab.engine.kernels.augment import (A_BRIGHTNESS, A_CONTRAST, A_CROP_PAD, A_CUTOUT, A_FLIP, A_MIXUP, A_NOISE,
                                        A_SCALE, N_AUG, augment_batch, beta_weight)
from lab.errors import ScenarioError
from lab.scenario.load import parse_scenario
from lab.sim import Simulation

C, H, W = 2, 5, 6


def batch(B=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, C * H * W)), rng.integers(0, 3, B)


def run(x, y, **params):
    aug = np.zeros(N_AUG)
    for name, value in params.items():
        aug[{"flip": A_FLIP, "crop_pad": A_CROP_PAD, "noise": A_NOISE, "brightness": A_BRIGHTNESS,
             "contrast": A_CONTRAST, "cutout": A_CUTOUT, "mixup": A_MIXUP, "scale": A_SCALE}[name]] = value
    x = x.copy()
    y2 = np.empty_like(y)
    lam = np.empty(len(y))
    augment_batch(x, y, y2, lam, aug, C, H, W, np.random.default_rng(42), np.empty(C * H * W))
    return x, y2, lam


def images(x):
    return x.reshape(-1, C, H, W)


def test_nothing_on_means_identity():
    x, y = batch()
    out, y2, lam = run(x, y)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(lam, 1.0)


def test_flip_mirrors_some_images_and_leaves_the_rest():
    x, y = batch(B=64)
    out, _, _ = run(x, y, flip=1)
    imgs, src = images(out), images(x)
    flipped = [np.array_equal(imgs[i], src[i, :, :, ::-1]) for i in range(64)]
    kept = [np.array_equal(imgs[i], src[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 16 < sum(flipped) < 48  # about half, drawn per image


def test_crop_pad_is_a_shift_with_zero_fill():
    x, y = batch(B=32)
    out, _, _ = run(x, y, crop_pad=2)
    imgs, src = images(out), images(x)
    for i in range(32):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = np.zeros_like(src[i])
                for h in range(H):
                    for w in range(W):
                        if 0 <= h + dy < H and 0 <= w + dx < W:
                            shifted[:, h, w] = src[i, :, h + dy, w + dx]
                matches.append(np.array_equal(imgs[i], shifted))
        assert any(matches), f"image {i} is not a shifted copy"


def test_cutout_zeroes_one_square_per_image():
    x, y = batch(B=16)
    x += 10.0  # no pixel is zero before
    out, _, _ = run(x, y, cutout=3)
    for img in images(out):
        zero = np.all(img == 0, axis=0)
        rows, cols = np.nonzero(zero)
        assert 1 <= zero.sum() <= 9
        assert rows.max() - rows.min() < 3 and cols.max() - cols.min() < 3
        assert zero.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a filled rectangle


def test_noise_has_the_requested_std():
    x, y = batch(B=256)
    out, _, _ = run(x, y, noise=0.3)
    assert abs(np.std(out - x) - 0.3) < 0.01


def test_contrast_and_brightness_are_affine_per_image():
    x, y = batch(B=16)
    out, _, _ = run(x, y, contrast=0.5, brightness=0.5)
    for a, b in zip(out, x):
        slope, intercept = np.polyfit(b, a, 1)
        np.testing.assert_allclose(a, slope * b + intercept, atol=1e-9)
        assert 0.5 <= slope <= 1.5


def numpy_zoom(image: np.ndarray, z: float) -> np.ndarray:
    """(C, H, W) zoomed about its centre by z, bilinear, zero outside: with scipy-free numpy."""
    out = np.zeros_like(image)
    cy, cx = (H - 1) / 2, (W - 1) / 2
    padded = np.zeros((image.shape[0], H + 4, W + 4))
    padded[:, 2:-2, 2:-2] = image
    for h in range(H):
        for w in range(W):
            sy, sx = cy + (h - cy) / z, cx + (w - cx) / z
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            fy, fx = sy - y0, sx - x0
            if not (-2 <= y0 and y0 + 1 < H + 2 and -2 <= x0 and x0 + 1 < W + 2):
                continue  # the whole 2x2 neighbourhood is outside: 0
            p = padded[:, y0 + 2:y0 + 4, x0 + 2:x0 + 4]
            out[:, h, w] = ((1 - fy) * (1 - fx) * p[:, 0, 0] + (1 - fy) * fx * p[:, 0, 1]
                            + fy * (1 - fx) * p[:, 1, 0] + fy * fx * p[:, 1, 1])
    return out


@pytest.mark.parametrize("s", [0.1, 0.5, 0.9])
def test_scale_zooms_each_image_about_its_centre_as_numpy_does(s):
    x, y = batch(B=16)
    out, _, _ = run(x, y, scale=s)
    rng = np.random.default_rng(42)  # run()'s stream: one uniform per image, nothing else is on
    factors = [rng.uniform(1 - s, 1 + s) for _ in range(len(x))]
    assert min(factors) < 1 < max(factors)  # both shrunk and magnified images are checked
    for got, image, z in zip(images(out), images(x), factors):
        np.testing.assert_allclose(got, numpy_zoom(image, z), rtol=1e-12, atol=1e-12)


def test_a_zoom_of_one_is_the_identity():
    x, y = batch()
    np.testing.assert_allclose(images(run(x, y, scale=1e-12)[0]), images(x), atol=1e-9)


def test_mixup_blends_pairs_and_reports_partner_labels():
    x, y = batch(B=16)
    out, y2, lam = run(x, y, mixup=0.4)
    assert np.all(lam == lam[0]) and 0 < lam[0] < 1
    partners = []
    for i in range(16):
        hits = [j for j in range(16) if np.allclose(out[i], lam[0] * x[i] + (1 - lam[0]) * x[j])]
        assert hits, f"row {i} is not a blend with any row"
        assert y2[i] in {y[j] for j in hits}
        partners.append(hits[0])
    assert sorted(partners) == list(range(16)) or len(set(partners)) > 1  # a permutation of the batch


def digits(**augment):
    return parse_scenario({"data": {"kind": "digits", "n": 400, "preprocess": ["center"], "augment": augment},
                           "model": {"hidden": [32]}, "train": {"steps": 30, "eval_every": 10}})


def test_augmented_runs_are_deterministic_and_differ_from_plain():
    on = dict(flip=True, crop_pad=1, noise=0.1, cutout=2, mixup=0.2)
    a, b, plain = Simulation(digits(**on)), Simulation(digits(**on)), Simulation(digits())
    for sim in (a, b, plain):
        sim.step(30)
    np.testing.assert_array_equal(a.history.series["loss"].values(), b.history.series["loss"].values())
    assert not np.array_equal(a.history.series["loss"].values(), plain.history.series["loss"].values())


def test_evaluation_is_never_augmented():
    sim = Simulation(digits(noise=5.0, cutout=4))
    plain = Simulation(digits())
    # same weights: evaluation of the initial network must not see the (huge) noise
    assert sim.history.series["val_loss"].values()[0] == plain.history.series["val_loss"].values()[0]


def test_augmenting_non_image_data_is_an_error():
    with pytest.raises(ScenarioError, match="augment"):
        parse_scenario({"data": {"kind": "spiral", "augment": {"flip": True}}})
    with pytest.raises(ScenarioError, match="pca/whiten"):
        parse_scenario({"data": {"kind": "digits", "preprocess": ["pca"], "augment": {"cutout": 2}}})


@numba.njit
def _beta_draws(rng, a, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = beta_weight(rng, a)
    return out


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.4, 1.0, 2.0, 10.0])
def test_the_mixup_weight_is_numpys_beta_draw_for_draw(alpha):
    """The same draws as numpy's Generator.beta(alpha, alpha) (and numba's rng.beta, which
    agrees with it at these alphas): runs with mixup keep their exact numbers."""
    ours = _beta_draws(np.random.default_rng(3), alpha, 5000)
    np.testing.assert_array_equal(ours, np.random.default_rng(3).beta(alpha, alpha, 5000))


@pytest.mark.parametrize("alpha", [1e-3, 1e-7])
def test_small_alphas_follow_numpys_fixed_algorithm(alpha):
    """Where a power underflows numpy (since gh-24203) finishes in logarithms instead of
    drawing again; so do we, so the draws stay in step (values agree to rounding)."""
    ours = _beta_draws(np.random.default_rng(4), alpha, 5000)
    theirs = np.random.default_rng(4).beta(alpha, alpha, 5000)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert np.all((ours >= 0) & (ours <= 1))


TINY_ALPHAS = r"""
import numpy as np
from lab.engine.kernels.augment import A_MIXUP, N_AUG, augment_batch
C, H, W, B = 1, 4, 4, 32
for alpha in (1e-7, 1e-12, 1e-20, 1e-200, 5e-324):
    aug = np.zeros(N_AUG); aug[A_MIXUP] = alpha
    rng = np.random.default_rng(0)
    weights = []
    for _ in range(200):
        x = rng.standard_normal((B, C * H * W)); y = np.arange(B) % 3
        y2 = np.empty_like(y); lam = np.empty(B)
        augment_batch(x, y, y2, lam, aug, C, H, W, rng, np.empty(C * H * W))
        weights.append(lam[0])
    w = np.array(weights)
    assert np.all((w == 0.0) | (w == 1.0)), (alpha, w)  # Beta(a, a), a -> 0: a fair coin between 0 and 1
    assert 50 < np.sum(w == 1.0) < 150, (alpha, np.sum(w == 1.0))
print("done")
"""


def test_tiny_mixup_alphas_finish(tmp_path):
    """numba's rng.beta spins for ~1/(1500 a) tries per draw (7 s at 1e-12) and never stops
    below ~1e-19; the kernel's own draw finishes at once.  In a subprocess, so a regression
    fails on the timeout instead of hanging the suite."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("NUMBA_DISABLE_JIT", None)
    done = subprocess.run([sys.executable, "-c", TINY_ALPHAS], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)  # generous: the first run may compile (~20 s)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"


@pytest.mark.parametrize("alpha", [1e-7, 1e-12, 0.009])
def test_a_scenario_with_a_tiny_mixup_alpha_is_rejected_with_the_reason(alpha):
    with pytest.raises(ScenarioError, match=r"data\.augment\.mixup: must be 0 \(off\) or at least 0\.01.*nothing is blended"):
        parse_scenario({"data": {"kind": "digits", "augment": {"mixup": alpha}}})
    for fine in (0.0, 0.01, 0.2):
        parse_scenario({"data": {"kind": "digits", "augment": {"mixup": fine}}})
