"""Data augmentation of an image batch, in place, inside the training loop.

Rows of the batch are flattened (C, H, W) images.  Everything is drawn from the training
stream, per batch, so augmented runs stay deterministic; evaluation never augments.
Mixup returns the partner labels and the mixing weight for the loss.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from .shuffle import shuffle

# Layout of the `aug` parameter array.
A_FLIP, A_CROP_PAD, A_NOISE, A_BRIGHTNESS, A_CONTRAST, A_CUTOUT, A_MIXUP, A_SCALE = range(8)
N_AUG = 8


# Below this, Beta(a, a) is 0 or 1 in double precision (all but a ~1e-100 chance): a coin
# flip.  numpy draws it so too (numpy gh-24266); Johnk's loop would take log(0) paths.
BETA_COIN_BELOW = 3e-103


@jit
def beta_weight(rng, a):
    """A draw from Beta(a, a), a > 0, that terminates for every a (mixup's weight).

    The same algorithm and the same draws as numpy's Generator.beta(a, a) today: Johnk's
    for a <= 1 (two uniforms per try), the ratio of two gammas above.  numba's own
    `rng.beta` is a copy of numpy's older code, which accepted a try only when
    U**(1/a) + V**(1/a) > 0: for small a both powers underflow to 0 almost always, and
    the loop runs about 1/(1500 a) times per draw (7 s at a = 1e-12, one draw per step)
    and for ever below a ~ 1e-19.  numpy fixed it (gh-24203) by testing U + V > 0 and
    finishing in logarithms whenever a power underflows; so does this.
    """
    if a > 1.0:
        ga = rng.standard_gamma(a)
        gb = rng.standard_gamma(a)
        return ga / (ga + gb)
    if a < BETA_COIN_BELOW:
        return 1.0 if rng.random() < 0.5 else 0.0
    while True:
        u = rng.random()
        v = rng.random()
        x = u ** (1.0 / a)
        y = v ** (1.0 / a)
        s = x + y
        if s <= 1.0 and u + v > 0.0:  # accepted: at least one in two tries for every a <= 1
            if x > 0.0 and y > 0.0:
                return x / s
            # a power underflowed: x / (x + y) from logarithms (u or v may be 0, not both)
            log_x = math.log(u) / a if u > 0.0 else -math.inf
            log_y = math.log(v) / a if v > 0.0 else -math.inf
            delta = log_x - log_y
            if delta > 0.0:
                return math.exp(-math.log1p(math.exp(-delta)))
            return math.exp(delta - math.log1p(math.exp(delta)))


@jit
def augment_batch(x, y, y2, lam, aug, C, H, W, rng, tmp):
    """x (B, C*H*W) is augmented in place; y2/lam (B,) receive mixup partners and weights.

    tmp is scratch of one image (C*H*W).  Without mixup, y2 = y and lam = 1.
    """
    B = x.shape[0]
    HW = H * W
    flip = aug[A_FLIP] > 0
    pad = int(aug[A_CROP_PAD])
    noise = aug[A_NOISE]
    bright = aug[A_BRIGHTNESS]
    contrast = aug[A_CONTRAST]
    cut = int(aug[A_CUTOUT])
    zoom = aug[A_SCALE]
    cy = (H - 1) * 0.5
    cx = (W - 1) * 0.5
    for i in range(B):
        row = x[i]
        # 1) horizontal flip with probability 1/2
        if flip and rng.random() < 0.5:
            for c in range(C):
                for h in range(H):
                    base = c * HW + h * W
                    for w in range(W // 2):
                        t = row[base + w]
                        row[base + w] = row[base + W - 1 - w]
                        row[base + W - 1 - w] = t
        # 2) pad with zeros by `pad` and crop back at a random offset = shift by (dy, dx)
        if pad > 0:
            dy = rng.integers(-pad, pad + 1)
            dx = rng.integers(-pad, pad + 1)
            for k in range(C * HW):
                tmp[k] = row[k]
            for c in range(C):
                for h in range(H):
                    for w in range(W):
                        sh = h + dy
                        sw = w + dx
                        inside = 0 <= sh < H and 0 <= sw < W
                        row[c * HW + h * W + w] = tmp[c * HW + sh * W + sw] if inside else 0.0
        # 2b) zoom about the centre by z ~ U(1 - s, 1 + s): output pixel (h, w) samples the
        #     image bilinearly at (cy + (h - cy) / z, cx + (w - cx) / z); outside it is 0
        if zoom > 0:
            z = rng.uniform(1.0 - zoom, 1.0 + zoom)
            for k in range(C * HW):
                tmp[k] = row[k]
            for h in range(H):
                sy = cy + (h - cy) / z
                y0 = math.floor(sy)
                fy = sy - y0
                for w in range(W):
                    sx = cx + (w - cx) / z
                    x0 = math.floor(sx)
                    fx = sx - x0
                    for c in range(C):
                        v = 0.0
                        for ky in range(2):
                            yy = int(y0) + ky
                            wy = fy if ky == 1 else 1.0 - fy
                            if 0 <= yy < H and wy != 0.0:
                                for kx in range(2):
                                    xx = int(x0) + kx
                                    wx = fx if kx == 1 else 1.0 - fx
                                    if 0 <= xx < W and wx != 0.0:
                                        v += wy * wx * tmp[c * HW + yy * W + xx]
                        row[c * HW + h * W + w] = v
        # 3) contrast (scale around the image mean) and brightness (shift)
        if contrast > 0 or bright > 0:
            scale = rng.uniform(1.0 - contrast, 1.0 + contrast) if contrast > 0 else 1.0
            shift = rng.uniform(-bright, bright) if bright > 0 else 0.0
            mean = 0.0
            for k in range(C * HW):
                mean += row[k]
            mean /= C * HW
            for k in range(C * HW):
                row[k] = (row[k] - mean) * scale + mean + shift
        # 4) gaussian noise
        if noise > 0:
            for k in range(C * HW):
                row[k] += noise * rng.standard_normal()
        # 5) cutout: zero a cut x cut square centred anywhere (clipped at the border)
        if cut > 0:
            cy = rng.integers(0, H)
            cx = rng.integers(0, W)
            for c in range(C):
                for h in range(max(0, cy - cut // 2), min(H, cy - cut // 2 + cut)):
                    for w in range(max(0, cx - cut // 2), min(W, cx - cut // 2 + cut)):
                        row[c * HW + h * W + w] = 0.0
    # 6) mixup: one weight per batch, each image blended with a shuffled partner
    for i in range(B):
        y2[i] = y[i]
        lam[i] = 1.0
    if aug[A_MIXUP] > 0 and B > 1:
        a = aug[A_MIXUP]
        l = beta_weight(rng, a)
        perm = np.arange(B)  # = rng.permutation(B), the same draws
        shuffle(rng, perm)
        mixed = x.copy()
        for i in range(B):
            p = perm[i]
            for k in range(x.shape[1]):
                mixed[i, k] = l * x[i, k] + (1.0 - l) * x[p, k]
            y2[i] = y[p]
            lam[i] = l
        for i in range(B):  # a loop, not x[:, :] = mixed: see optim.optimizer_update
            for k in range(x.shape[1]):
                x[i, k] = mixed[i, k]
