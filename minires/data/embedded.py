"""The embedded dataset: ten classes of procedurally drawn shapes and textures.

Nothing is downloaded: the images are drawn from a seed, deterministically, at any size, in a few
seconds (vectorised NumPy). A class is the combination of a **shape** and a **fill texture**:

======  =================  ======  ==================
label   class              label   class
======  =================  ======  ==================
0       disc               5       striped disc
1       square             6       striped square
2       triangle           7       striped triangle
3       cross              8       striped cross
4       ring               9       striped ring
======  =================  ======  ==================

What varies from image to image, independently of the class:

* position (anywhere, partly off the edge allowed), size (45%-80% of the half-width), rotation
  (any angle) and an anisotropic stretch (up to +-15%);
* the colours: background, foreground and the second stripe colour are random RGB colours, drawn
  the same way for every class (the foreground differs from the background by 0.3-0.7 in every
  channel, so the shape is always visible). **Colour carries no information about the label.**
* the stripes' period, direction and phase;
* a background colour gradient, 3 small blurry distractor blobs of random colours behind the shape,
  and uniform pixel noise of a random strength (standard deviation 0.02-0.08).

Why a linear model fails: the foreground and background colours have the same distribution, so
the class-conditional *mean* image is the same flat grey for every class; a linear classifier on
pixels has nothing to hold on to and stays close to chance (see docs/data.md for the measured
accuracy). Telling the classes apart needs local edge/texture detectors combined over space, which
is what convolutional depth buys.

Images are float32 ``(N, 3, S, S)`` in [0, 1]; labels are int64; the classes are balanced (counts
differ by at most one). Train and test come from the same distribution, from independent streams
of the same seed, so the training set does not depend on ``num_test`` and vice versa.
"""
from __future__ import annotations

import numpy

from .loader import TensorDataset

__all__ = ["CLASSES", "ShapesDataset", "make_shapes_dataset", "load_embedded", "render_shapes"]

CLASSES = ("disc", "square", "triangle", "cross", "ring",
           "striped disc", "striped square", "striped triangle", "striped cross", "striped ring")
_NUM_SHAPES = 5
_CHUNK = 1024          # images rendered at once (fixed: the noise stream depends on it)
_NUM_BLOBS = 3
# The dataset's streams come from [seed, salt], apart from a DataLoader's shuffling ([seed, epoch])
# with the same seed. Arbitrary, fixed for good: changing it changes every dataset of a seed.
_DATASET_SALT = 0x5EA9E5


class ShapesDataset(TensorDataset):
    """A :class:`~minires.data.loader.TensorDataset` of the embedded shapes-and-textures images."""

    def __init__(self, images, labels, classes, image_size: int, seed: int, split: str):
        super().__init__(images, labels, classes=classes)
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.split = split

    def __repr__(self):
        return (f"ShapesDataset(split={self.split!r}, {len(self)} images {self.image_size}x"
                f"{self.image_size}, {self.num_classes} classes, seed={self.seed})")


# ---------------------------------------------------------------------------------------------
# Parameters, drawn per image
# ---------------------------------------------------------------------------------------------

def _balanced_labels(n: int, num_classes: int, rng: numpy.random.Generator) -> numpy.ndarray:
    labels = numpy.arange(n, dtype=numpy.int64) % num_classes
    return rng.permutation(labels)


def _contrasting(base: numpy.ndarray, rng: numpy.random.Generator) -> numpy.ndarray:
    """A colour 0.3-0.7 away from ``base`` in every channel (mod 1): uniform marginally."""
    return (base + rng.uniform(0.3, 0.7, size=base.shape)) % 1.0


def _draw_params(labels: numpy.ndarray, rng: numpy.random.Generator) -> dict:
    n = len(labels)
    f = numpy.float32
    radius = rng.uniform(0.45, 0.8, size=n)
    limit = 1.0 - 0.6 * radius                      # the centre keeps most of the shape inside
    bg = rng.random((n, 3))
    fg = _contrasting(bg, rng)
    fg2 = _contrasting(fg, rng)
    return {
        "shape": (labels % _NUM_SHAPES).astype(numpy.int64),
        "striped": labels >= _NUM_SHAPES,
        "cx": (rng.uniform(-1, 1, size=n) * limit).astype(f),
        "cy": (rng.uniform(-1, 1, size=n) * limit).astype(f),
        "radius": radius.astype(f),
        "angle": rng.uniform(0, 2 * numpy.pi, size=n).astype(f),
        "stretch": rng.uniform(-0.15, 0.15, size=n).astype(f),
        "bg": bg.astype(f), "fg": fg.astype(f), "fg2": fg2.astype(f),
        "gradient": rng.uniform(-0.15, 0.15, size=(n, 3, 2)).astype(f),
        "stripe_period": rng.uniform(0.35, 0.5, size=n).astype(f),    # in half-widths
        "stripe_angle": rng.uniform(0, numpy.pi, size=n).astype(f),
        "stripe_phase": rng.uniform(0, 2 * numpy.pi, size=n).astype(f),
        "blob_xy": rng.uniform(-1, 1, size=(n, _NUM_BLOBS, 2)).astype(f),
        "blob_sigma": rng.uniform(0.06, 0.12, size=(n, _NUM_BLOBS)).astype(f),
        "blob_colour": rng.random((n, _NUM_BLOBS, 3)).astype(f),
        "blob_alpha": rng.uniform(0.4, 0.9, size=(n, _NUM_BLOBS)).astype(f),
        "noise": rng.uniform(0.02, 0.08, size=n).astype(f),
    }


# ---------------------------------------------------------------------------------------------
# Signed distances of the shapes, in the shape's own frame (unit size); < 0 inside
# ---------------------------------------------------------------------------------------------

def _sdf_disc(u, v):
    return numpy.sqrt(u * u + v * v) - 1.0


def _sdf_square(u, v):
    return numpy.maximum(numpy.abs(u), numpy.abs(v)) - 0.8


_TRI_NORMALS = [(numpy.float32(numpy.cos(a)), numpy.float32(numpy.sin(a)))
                for a in (numpy.pi / 2, numpy.pi / 2 + 2 * numpy.pi / 3,
                          numpy.pi / 2 + 4 * numpy.pi / 3)]


def _sdf_triangle(u, v):
    (a0, b0), (a1, b1), (a2, b2) = _TRI_NORMALS
    d = numpy.maximum(numpy.maximum(a0 * u + b0 * v, a1 * u + b1 * v), a2 * u + b2 * v)
    return d - 0.6                                   # inradius 0.6, circumradius 1.2


def _sdf_cross(u, v):
    au, av = numpy.abs(u), numpy.abs(v)
    return numpy.minimum(numpy.maximum(au - 0.33, av - 1.0), numpy.maximum(au - 1.0, av - 0.33))


def _sdf_ring(u, v):
    return numpy.abs(numpy.sqrt(u * u + v * v) - 0.72) - 0.28


_SDFS = (_sdf_disc, _sdf_square, _sdf_triangle, _sdf_cross, _sdf_ring)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def render_shapes(params: dict, image_size: int, rng: numpy.random.Generator) -> numpy.ndarray:
    """Draw the images described by ``params`` (see :func:`_draw_params`): ``(n, 3, S, S)``.

    Every image is a stack of layers composited back to front: the background (a colour plus a
    linear gradient), the distractor blobs, the shape (solid or striped). Each layer's *coverage*
    is a one-channel map; the colours enter only at the end, as one batched matrix product
    ``(3 x L) @ (L x S*S)`` per image, which is much cheaper than blending three channels per layer.
    """
    n = len(params["shape"])
    s = int(image_size)
    f = numpy.float32
    out = numpy.empty((n, 3, s, s), dtype=f)
    coords = ((numpy.arange(s, dtype=f) + f(0.5)) * f(2.0 / s) - f(1.0))
    gx = coords[None, None, :]        # (1, 1, S): x varies along columns
    gy = coords[None, :, None]        # (1, S, 1): y varies along rows
    half_pixel = f(s / 2.0)           # normalised units -> pixels
    num_layers = 3 + _NUM_BLOBS + 2
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        p = {k: v[lo:hi] for k, v in params.items()}
        m = hi - lo
        col = lambda a: a[:, None, None]   # noqa: E731  (m,) -> (m, 1, 1)

        # the shape's frame: translate, rotate, stretch, scale to unit size
        x = gx - col(p["cx"])
        y = gy - col(p["cy"])
        c, sn = col(numpy.cos(p["angle"])), col(numpy.sin(p["angle"]))
        r = col(p["radius"])
        u = (c * x + sn * y) * (f(1.0) + col(p["stretch"])) / r
        v = (c * y - sn * x) * (f(1.0) - col(p["stretch"])) / r
        d = numpy.empty((m, s, s), dtype=f)
        for shape_id, sdf in enumerate(_SDFS):
            idx = numpy.flatnonzero(p["shape"] == shape_id)
            if len(idx):
                d[idx] = sdf(u[idx], v[idx])
        # anti-aliased coverage: the signed distance in pixels, one pixel of soft edge
        alpha = numpy.clip(f(0.5) - d * r * half_pixel, 0.0, 1.0)             # (m, S, S)

        # stripes: the share of the first fill colour (1 everywhere for a solid shape)
        t = numpy.ones((m, s, s), dtype=f)
        striped = numpy.flatnonzero(p["striped"])
        if len(striped):
            ang = p["stripe_angle"][striped]
            proj = gx * col(numpy.cos(ang)) + gy * col(numpy.sin(ang))
            wave = numpy.sin(proj * col(f(2 * numpy.pi) / p["stripe_period"][striped])
                             + col(p["stripe_phase"][striped]))
            t[striped] = numpy.clip(f(0.5) + f(1.5) * wave, 0.0, 1.0)          # squarish wave

        # coverage of each layer after everything in front of it ("over" compositing)
        layers = numpy.empty((m, num_layers, s, s), dtype=f)
        visible = f(1.0) - alpha                      # what the shape leaves of the layers behind
        layers[:, -2] = alpha * t
        layers[:, -1] = alpha - layers[:, -2]
        for k in reversed(range(_NUM_BLOBS)):         # front-most blob first
            dx = gx - col(p["blob_xy"][:, k, 0])
            dy = gy - col(p["blob_xy"][:, k, 1])
            inv = f(-0.5) / (col(p["blob_sigma"][:, k]) ** 2)
            a = numpy.exp((dx * dx + dy * dy) * inv) * col(p["blob_alpha"][:, k])
            layers[:, 3 + k] = visible * a
            visible = visible * (f(1.0) - a)
        layers[:, 0] = visible                        # background colour
        layers[:, 1] = visible * gx                   # + gradient along x
        layers[:, 2] = visible * gy                   # + gradient along y

        colours = numpy.empty((m, 3, num_layers), dtype=f)
        colours[:, :, 0] = p["bg"]
        colours[:, :, 1:3] = p["gradient"]
        colours[:, :, 3:3 + _NUM_BLOBS] = p["blob_colour"].transpose(0, 2, 1)
        colours[:, :, -2] = p["fg"]
        colours[:, :, -1] = p["fg2"]
        img = numpy.matmul(colours, layers.reshape(m, num_layers, s * s)).reshape(m, 3, s, s)

        # additive noise: uniform, with standard deviation p["noise"]
        noise = rng.random((m, 3, s, s), dtype=f)
        noise -= f(0.5)
        noise *= (p["noise"] * f(numpy.sqrt(12.0)))[:, None, None, None]
        img += noise
        numpy.clip(img, 0.0, 1.0, out=out[lo:hi])
    return out


def _make_split(n: int, image_size: int, num_classes: int, seed_seq) -> tuple:
    rng = numpy.random.default_rng(seed_seq)
    labels = _balanced_labels(n, num_classes, rng)
    params = _draw_params(labels, rng)
    images = render_shapes(params, image_size, rng)
    return images, labels


def make_shapes_dataset(num_train: int = 50000, num_test: int = 10000, image_size: int = 32,
                        num_classes: int = 10, seed: int = 0
                        ) -> tuple[ShapesDataset, ShapesDataset]:
    """The embedded dataset as ``(train, test)`` :class:`ShapesDataset` objects.

    ``num_classes`` (2-10) keeps the first classes of :data:`CLASSES`. The same arguments give
    bit-identical arrays on every run; the training set depends only on ``(num_train,
    image_size, num_classes, seed)`` and the test set only on ``(num_test, image_size,
    num_classes, seed)``.
    """
    if not 2 <= int(num_classes) <= len(CLASSES):
        raise ValueError(f"num_classes must be between 2 and {len(CLASSES)}, got {num_classes}")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if int(num_train) < 0 or int(num_test) < 0:
        raise ValueError("num_train and num_test must be >= 0")
    if isinstance(seed, bool) or not isinstance(seed, (int, numpy.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    train_seq, test_seq = numpy.random.SeedSequence([int(seed), _DATASET_SALT]).spawn(2)
    classes = CLASSES[:int(num_classes)]
    out = []
    for split, n, seq in (("train", int(num_train), train_seq), ("test", int(num_test), test_seq)):
        images, labels = _make_split(n, int(image_size), int(num_classes), seq)
        out.append(ShapesDataset(images, labels, classes, int(image_size), int(seed), split))
    return out[0], out[1]


def load_embedded(image_size: int = 32, num_train: int = 50000, num_test: int = 10000,
                  seed: int = 0, num_classes: int = 10) -> tuple[ShapesDataset, ShapesDataset]:
    """``(train, test)`` of the embedded dataset (the same as :func:`make_shapes_dataset`)."""
    return make_shapes_dataset(num_train=num_train, num_test=num_test, image_size=image_size,
                               num_classes=num_classes, seed=seed)
