"""Image classifiers, looked up by name in ``MODELS``.

Every model maps float images in [0, 1] (B, H, W, C) to softmax probabilities (B, K) in float32
(the last layer is ``Activation("softmax", dtype="float32")`` so mixed precision stays safe).
The penultimate representation is the layer named ``"features"`` (see ``feature_extractor``).
Build models inside ``tf.distribute.get_strategy().scope()``; the builders create no variables
outside the layers, so they work under MirroredStrategy.

Regularization switches shared by all builders: ``dropout`` scales every dropout rate (0 removes
the Dropout layers), ``batchnorm`` toggles BatchNormalization, ``weight_decay`` is the L2
coefficient added to the loss for conv and dense kernels (loss += wd * sum(w^2)).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from noisycore import catalog  # noqa: E402
from noisycore.errors import UserError  # noqa: E402


class _Blocks:
    """Layer factory holding the regularization switches and a seed counter for initializers."""

    def __init__(self, *, dropout, batchnorm, weight_decay, seed, bn_momentum=0.99):
        self.dropout, self.batchnorm, self.bn_momentum = float(dropout), bool(batchnorm), bn_momentum
        self.reg = keras.regularizers.L2(weight_decay) if weight_decay > 0 else None
        self.seed, self.count = seed, 0

    def _next_seed(self):
        self.count += 1
        return None if self.seed is None else (int(self.seed) * 1000 + self.count) % (2**31 - 1)

    def conv(self, x, filters, *, kernel=3, strides=1, use_bias=True, name=None):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=use_bias,
                             kernel_initializer=keras.initializers.GlorotUniform(self._next_seed()),
                             kernel_regularizer=self.reg, name=name)(x)

    def conv_he(self, x, filters, *, kernel=3, strides=1, name=None, dirac=False):
        """ResNet convolutions: He init (``dirac``: identity in the first filters, ``DiracInit``), no bias
        when a BatchNorm follows."""
        init = (DiracInit if dirac else keras.initializers.HeNormal)(self._next_seed())
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=not self.batchnorm,
                             kernel_initializer=init, kernel_regularizer=self.reg, name=name)(x)

    def dense(self, x, units, *, name=None):
        return layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(self._next_seed()),
                            kernel_regularizer=self.reg, name=name)(x)

    def bn(self, x):
        return layers.BatchNormalization(momentum=self.bn_momentum)(x) if self.batchnorm else x

    def drop(self, x, rate):
        rate = min(rate * self.dropout, 0.9)
        return layers.Dropout(rate, seed=self._next_seed())(x) if rate > 0 else x

    def head(self, x, num_classes):
        x = self.dense(x, num_classes, name="logits")
        return layers.Activation("softmax", dtype="float32", name="probs")(x)


def build_blog_cnn(*, input_shape, num_classes, dropout=1.0, batchnorm=True, weight_decay=0.0, seed=None):
    """The blog post's CNN: 3 blocks of [conv3x3-BN-ReLU] x 2 (32, 64, 128 filters) + max-pool +
    dropout 0.2/0.3/0.4, then flatten, dense 256-BN-ReLU ("features"), dropout 0.5, softmax.

    816,938 parameters for 32x32x3 inputs and K = 10 (with BatchNorm).
    """
    b = _Blocks(dropout=dropout, batchnorm=batchnorm, weight_decay=weight_decay, seed=seed)
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for filters, rate in ((32, 0.2), (64, 0.3), (128, 0.4)):
        for _ in range(2):
            x = layers.Activation("relu")(b.bn(b.conv(x, filters)))
        x = b.drop(layers.MaxPooling2D(2)(x), rate)
    x = b.dense(layers.Flatten()(x), 256)
    x = layers.Activation("relu", name="features")(b.bn(x))
    outputs = b.head(b.drop(x, 0.5), num_classes)
    return keras.Model(inputs, outputs, name="blog_cnn")


def build_compact_cnn(*, input_shape, num_classes, dropout=1.0, batchnorm=True, weight_decay=0.0, seed=None):
    """A small fast CNN for CPU demos: a stride-2 stem (32 px -> 16 px at once), conv 32, pool,
    conv 64 x 2, pool, conv 128, global average pooling, dense 128 ("features"), softmax.
    Every conv is 3x3-BN-ReLU; dropout 0.1 / 0.2 after the pools and 0.3 before the head.
    BatchNorm momentum 0.9 (Keras: 0.99) so the test-time statistics settle within a short demo run.

    About 1/5 of the blog CNN's multiply-adds and activations at 32x32 (7M vs 39M per image).
    """
    b = _Blocks(dropout=dropout, batchnorm=batchnorm, weight_decay=weight_decay, seed=seed, bn_momentum=0.9)
    conv = lambda x, f, **kw: layers.Activation("relu")(b.bn(b.conv(x, f, **kw)))  # noqa: E731
    inputs = keras.Input(shape=input_shape, name="images")
    x = conv(conv(inputs, 32, strides=2), 32)
    x = b.drop(layers.MaxPooling2D(2)(x), 0.1)
    x = b.drop(layers.MaxPooling2D(2)(conv(conv(x, 64), 64)), 0.2)
    x = layers.GlobalAveragePooling2D()(conv(x, 128))
    x = layers.Activation("relu", name="features")(b.bn(b.dense(x, 128)))
    outputs = b.head(b.drop(x, 0.3), num_classes)
    return keras.Model(inputs, outputs, name="compact_cnn")


def _basic_block(b, x, filters, strides):
    """ResNet basic block: conv-BN-ReLU-conv-BN + shortcut (1x1 conv when the shape changes), ReLU."""
    shortcut = x
    y = layers.Activation("relu")(b.bn(b.conv_he(x, filters, strides=strides)))
    y = b.bn(b.conv_he(y, filters))
    if strides != 1 or x.shape[-1] != filters:
        shortcut = b.bn(b.conv_he(x, filters, kernel=1, strides=strides))
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def build_resnet(*, input_shape, num_classes, dropout=1.0, batchnorm=True, weight_decay=0.0, seed=None,
                 width=32, blocks=(2, 2, 2, 2)):
    """ResNet-18 layout for small images (He et al. 2016): 3x3 stem (no max-pool), four stages of
    ``blocks`` basic blocks with width, 2x, 4x, 8x filters (strides 1, 2, 2, 2), global average
    pooling ("features"), dropout 0.2, softmax. ``width=64`` is the usual CIFAR ResNet-18 (11.2M
    parameters); the default 32 has about a quarter of that. For GPUs.
    """
    if not isinstance(width, (int, np.integer)) or width < 4:
        raise UserError(f"resnet width={width!r} must be an integer >= 4 (32 or 64 are usual)")
    b = _Blocks(dropout=dropout, batchnorm=batchnorm, weight_decay=weight_decay, seed=seed)
    inputs = keras.Input(shape=input_shape, name="images")
    x = layers.Activation("relu")(b.bn(b.conv_he(inputs, width)))
    for stage, count in enumerate(blocks):
        for i in range(count):
            x = _basic_block(b, x, width * 2 ** stage, 2 if stage > 0 and i == 0 else 1)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    outputs = b.head(b.drop(x, 0.2), num_classes)
    return keras.Model(inputs, outputs, name="resnet")


# ------------------------------------------------------------------------------ fast_cnn (airbench-style)
FAST_WIDTHS = (64, 256, 256)   # airbench94's block widths; `width` scales them (0.5 -> 32, 128, 128)
FAST_WHITEN_CHANNELS = 24      # 2x2x3 = 12 eigen-directions and their negatives (the activation keeps both signs)
FAST_BN_EPSILON = 1e-5
FAST_BN_MOMENTUM = 0.4         # Keras convention (moving = m * moving + (1 - m) * batch) = PyTorch 0.6 (airbench)
FAST_LOGIT_SCALE = 1 / 9       # airbench: logits * 1/9 let the large learning rate stay stable
FAST_ACTIVATIONS = ("relu", "gelu")   # ReLU fuses into the BatchNorm kernel on a CPU; airbench's GELU does not
FAST_ACTIVATION = "relu"
FAST_WIDTH = 0.75              # x airbench94's widths: 48 / 192 / 192 (benchmarks/README.md, "Fused BatchNorm and ReLU")
FAST_MIN_SIDE = 9              # 2x2 valid conv, then three 2x2 max-pools: 9 -> 8 -> 4 -> 2 -> 1


@keras.saving.register_keras_serializable(package="noisycore")
class DiracInit(keras.initializers.Initializer):
    """airbench's identity ("dirac") initialization of a conv kernel (kh, kw, C_in, C_out): the first
    min(C_in, C_out) filters copy their input channel (centre tap 1, every other weight 0), the rest
    are He-normal. Each conv group then starts close to an identity map (an implicit residual)."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kernel = keras.initializers.HeNormal(self.seed)(shape, dtype=dtype)
        kh, kw, c_in, c_out = shape
        n = min(c_in, c_out)
        eye = np.zeros((kh, kw, c_in, c_out), dtype=np.float32)
        eye[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
        mask = np.ones((1, 1, 1, c_out), dtype=np.float32)
        mask[..., :n] = 0.0
        return kernel * keras.ops.convert_to_tensor(mask, dtype=kernel.dtype) + \
            keras.ops.convert_to_tensor(eye, dtype=kernel.dtype)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="noisycore")
class FusedBatchNorm(layers.Layer):
    """BatchNorm without scale (airbench freezes it at 1) as TensorFlow's fused kernel.

    Keras 3's ``BatchNormalization`` computes the moments and the normalization as separate
    element-wise operations; on a CPU that made BatchNorm cost more than the convolutions of
    fast_cnn (benchmarks/README.md, "Fused BatchNorm and ReLU"). ``FusedBatchNormV3`` does it in one
    pass, forward and backward; followed by ReLU it trains another ~2x faster (measured; TensorFlow's
    graph optimizer can fuse the two).
    The same arithmetic as ``BatchNormalization(scale=False, momentum=m, epsilon=e)``: in training
    y = (x - mean_batch) / sqrt(var_batch + e) + beta and moving = m * moving + (1 - m) * batch
    (the fused kernel hands back the unbiased batch variance for the moving average, as PyTorch
    uses; Keras uses the biased one: a factor n / (n - 1), n = batch x height x width values per channel);
    in inference the moving statistics. Weights: beta, moving_mean, moving_variance (the order of
    ``BatchNormalization(scale=False)``), kept in float32 under mixed precision.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta", autocast=False)
        self.moving_mean = self.add_weight(shape=(channels,), initializer="zeros", name="moving_mean",
                                           trainable=False, autocast=False)
        self.moving_variance = self.add_weight(shape=(channels,), initializer="ones", name="moving_variance",
                                               trainable=False, autocast=False)

    def call(self, inputs, training=False):
        import tensorflow as tf

        ones = tf.ones_like(self.moving_mean.value)
        if training:
            y, mean, var, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=ones, offset=self.beta.value, mean=tf.zeros((0,)), variance=tf.zeros((0,)),
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            m = self.momentum
            self.moving_mean.assign(m * self.moving_mean.value + (1 - m) * tf.stop_gradient(mean))
            self.moving_variance.assign(m * self.moving_variance.value + (1 - m) * tf.stop_gradient(var))
            return y
        y, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=ones, offset=self.beta.value, mean=self.moving_mean.value,
            variance=self.moving_variance.value, epsilon=self.epsilon, data_format="NHWC", is_training=False)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


def _fast_norm(x):
    """BatchNorm without scale (airbench freezes it at 1), fused (see ``FusedBatchNorm``)."""
    return FusedBatchNorm(momentum=FAST_BN_MOMENTUM, epsilon=FAST_BN_EPSILON)(x)


def _fast_group(b, x, filters, *, dirac, activation=FAST_ACTIVATION):
    """airbench's ConvGroup: conv3x3 -> max-pool 2 -> BN -> act -> conv3x3 -> BN -> act (no conv bias)."""
    x = layers.MaxPooling2D(2)(b.conv_he(x, filters, dirac=dirac))
    x = layers.Activation(activation)(_fast_norm(x))
    return layers.Activation(activation)(_fast_norm(b.conv_he(x, filters, dirac=dirac)))


def build_fast_cnn(*, input_shape, num_classes, dropout=1.0, batchnorm=True, weight_decay=0.0, seed=None,
                   width=None, dirac=True, activation=FAST_ACTIVATION):
    """airbench94's network for a CPU (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU").

    A frozen 2x2 "whitening" conv (24 filters, valid padding; ``init_whitening`` sets it from the
    fit images' patch covariance), the activation, three groups [conv3x3 -> max-pool 2 -> BN -> act ->
    conv3x3 -> BN -> act] of widths ``width`` x (64, 256, 256), a global max-pool ("features"),
    a bias-free dense layer and logits scaled by 1/9 before the softmax. BatchNorm has no scale
    (airbench freezes it at 1) and momentum 0.4 in Keras' convention (PyTorch's 0.6): the
    statistics follow the weights within the few hundred steps of a short run. ``dirac``: the
    group convolutions start as identity maps (``DiracInit``). ``dropout`` and ``batchnorm`` are
    ignored (the recipe needs BatchNorm); ``weight_decay`` is L2 on the kernels. (airbench's 64x
    learning rate for the BatchNorm biases was tried as a reparametrized bias and measured no
    better on a 10,000-image subset; see benchmarks/README.md.) ``activation``: "relu" (default)
    or airbench's "gelu". BatchNorm is ``FusedBatchNorm``, into which TensorFlow also fuses a ReLU:
    on a 2-core CPU that trains 2-3x as many images per second as Keras' BatchNormalization with
    GELU, for 0.3 points at equal epochs (benchmarks/README.md, "Fused BatchNorm and ReLU").
    width 1.0: 1.97M parameters; 0.75 (the default, ``FAST_WIDTH``): 1.1M and about 56% of the
    multiply-adds; 0.5: 0.5M and a quarter.
    """
    width = FAST_WIDTH if width is None else width
    if isinstance(width, bool) or not isinstance(width, (int, float, np.floating)) or not 0.05 <= width <= 4:
        raise UserError(f"fast_cnn width={width!r} must be a number in [0.05, 4] (1.0 = airbench94's 64/256/256)")
    if activation not in FAST_ACTIVATIONS:
        raise UserError(f"fast_cnn activation={activation!r} must be one of {', '.join(FAST_ACTIVATIONS)}")
    if min(input_shape[:2]) < FAST_MIN_SIDE:
        raise UserError(f"fast_cnn needs images of at least {FAST_MIN_SIDE} pixels per side (it halves them three "
                        f"times), got {input_shape[0]}x{input_shape[1]}; set the image size to 16 or more, or "
                        "choose compact_cnn")
    b = _Blocks(dropout=0.0, batchnorm=True, weight_decay=weight_decay, seed=seed)
    inputs = keras.Input(shape=input_shape, name="images")
    # float32 under mixed precision too: its gains reach 1/sqrt(eps') ~ 150, which would magnify
    # bfloat16's rounding of the inputs (about 3 significant digits) into the signal
    x = layers.Conv2D(FAST_WHITEN_CHANNELS * input_shape[2] // 3, 2, padding="valid", trainable=False,
                      dtype="float32", name="whiten")(inputs)
    x = layers.Activation(activation)(x)
    for filters in FAST_WIDTHS:
        x = _fast_group(b, x, max(8, int(round(filters * width))), dirac=bool(dirac), activation=activation)
    x = layers.GlobalMaxPooling2D(name="features")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_regularizer=b.reg, name="logits",
                     kernel_initializer=keras.initializers.GlorotUniform(b._next_seed()))(x)
    x = layers.Rescaling(FAST_LOGIT_SCALE, name="logit_scale")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="fast_cnn")


WHITEN_NULL_VARIANCE = 1 / (12 * 255 ** 2)   # an 8-bit pixel's rounding noise: a direction with less variance is no signal


def whitening_weights(images, *, kernel=2, eps=5e-4, max_images=5000, seed=0):
    """Kernel (k, k, C, 2D) and bias (2D,) that whiten the k x k patches of ``images``.

    images: uint8 (N, H, W, C) or float in [0, 1]. With the patch mean mu and covariance
    S = E[(p - mu)(p - mu)^T] = V diag(lam) V^T (D = k*k*C), the filters are
    w_i = v_i / sqrt(lam_i + eps') and their negatives, the bias -w_i . mu, so the outputs
    w_i . (p - mu) have covariance ~ identity. eps' = eps * trace(S) / D (airbench's 5e-4 on
    images normalized to unit variance, here relative to the images' own scale).

    Null directions are dropped (their filters are 0): a direction whose variance lam_i is below
    ``WHITEN_NULL_VARIANCE`` (the rounding noise of an 8-bit pixel, (1/255)^2 / 12) carries no signal,
    only rounding, and whitening would multiply that rounding by up to 1/sqrt(eps'). Grayscale images
    (three equal channels: 8 of 12 directions are null) and upscaled scans with flat backgrounds have
    such directions; with gains over 100 on them a bfloat16 network diverged in its first epoch
    (issue 28). Natural colour photos have none (CIFAR-10's smallest is 7e-6).

    At most ``max_images`` images are used (airbench uses 5,000), drawn at random with ``seed``:
    image folders are sorted by class, so the first 5,000 would describe one or two classes.
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise UserError(f"whitening needs images (N, H, W, C) with N >= 1, got shape {images.shape}")
    if len(images) > max_images:
        images = images[np.sort(np.random.default_rng(seed).choice(len(images), max_images, replace=False))]
    x = images.astype(np.float64)
    if images.dtype == np.uint8:
        x = x / 255.0
    n, h, w, c = x.shape
    patches = np.stack([x[:, i:h - kernel + 1 + i, j:w - kernel + 1 + j, :]
                        for i in range(kernel) for j in range(kernel)], axis=3)   # (N, H', W', k*k, C)
    flat = patches.reshape(-1, kernel * kernel * c)                              # order (di, dj, c) = kernel layout
    mu = flat.mean(axis=0)
    cov = np.cov(flat - mu, rowvar=False, bias=True)
    lam, vec = np.linalg.eigh(cov)
    lam, vec = lam[::-1], vec[:, ::-1]                                            # largest variance first
    filters = vec / np.sqrt(np.maximum(lam, 0) + eps * np.trace(cov) / len(lam))  # (D, D): column i = w_i
    filters[:, lam < WHITEN_NULL_VARIANCE] = 0.0
    filters = np.concatenate([filters, -filters], axis=1)
    kern = filters.reshape(kernel, kernel, c, -1).astype(np.float32)
    return kern, (-(mu @ filters)).astype(np.float32)


HEAD_UNITS = 512       # pretrained_head's hidden layer: model_width x this many units (width 0: a linear head)
HEAD_WIDTH = 0.5       # the default: 256 hidden units; out of sample 2 points better than a linear head on own photos
                       # (issue 29: benchmarks/own_data.py --recipe model_width=0 measures the linear head)
HEAD_VARIANCE_FLOOR = 0.01   # x the mean variance, added to each feature's: a feature (almost) constant on the fit
                             # images (a ReLU unit silent on a few hundred small photos) would otherwise scale a
                             # validation image's value by up to 1 / 1e-7 (Keras' epsilon); seen: val_loss 11,000


def build_pretrained_head(*, input_shape, num_classes, dropout=1.0, batchnorm=True, weight_decay=0.0, seed=None,
                          width=None):
    """A classifier head on pretrained embeddings (B, D) float32 (noisycore.embeddings: D = 1280).

    ``standardize``: a frozen per-feature (x - mean) / sqrt(var + HEAD_VARIANCE_FLOOR x mean(var)), set by
    ``init_from_data`` from the FIT split's embeddings (like fast_cnn's whitening). Then, for ``width`` > 0
    (default HEAD_WIDTH), dropout 0.5 x ``dropout`` and a hidden ReLU layer of width x HEAD_UNITS units
    ("features"); for width 0 (linear) the standardized embedding is "features". Then dropout 0.2 x
    ``dropout`` and a dense softmax layer. ``weight_decay``: L2 on the kernels; ``batchnorm`` is ignored."""
    if len(input_shape) != 1:
        raise UserError(f"pretrained_head takes embeddings (D,), got input_shape={input_shape!r}; "
                        "the run substitutes the cached embeddings for the images (noisycore.train.prepare)")
    width = HEAD_WIDTH if width is None else width
    b = _Blocks(dropout=dropout, batchnorm=False, weight_decay=weight_decay, seed=seed)
    inputs = keras.Input(shape=tuple(input_shape), name="embeddings")
    x = layers.Normalization(axis=-1, dtype="float32", name="standardize")(inputs)
    if width:
        _check_number("pretrained_head width", width, 0.0, 4.0)
        x = b.drop(x, 0.5)
        x = layers.Activation("relu", name="features")(b.dense(x, max(8, int(round(width * HEAD_UNITS)))))
    else:
        x = layers.Identity(name="features")(x)
    x = b.drop(x, 0.2)
    outputs = layers.Activation("softmax", dtype="float32", name="probs")(b.dense(x, num_classes, name="logits"))
    return keras.Model(inputs, outputs, name="pretrained_head")


def init_from_data(model, images, *, seed=0) -> None:
    """Set data-dependent initial weights: the ``whiten`` layer of fast_cnn from ``images``
    (pass the FIT split only, never validation or test images; ``seed`` draws its subset); the
    ``standardize`` layer of pretrained_head from the mean and variance of the fit embeddings.
    Other models: nothing to do."""
    names = {layer.name for layer in model.layers}
    if "standardize" in names:
        layer, x = model.get_layer("standardize"), np.asarray(images, dtype=np.float64)
        var = x.var(axis=0)
        layer.adapt_mean.assign(x.mean(axis=0).astype(np.float32))
        layer.adapt_variance.assign((var + HEAD_VARIANCE_FLOOR * var.mean()).astype(np.float32))
        layer.finalize_state()
        return
    if "whiten" not in names:
        return
    layer = model.get_layer("whiten")
    kern, bias = whitening_weights(images, kernel=layer.kernel.shape[0], seed=seed)
    layer.set_weights([kern, bias])


MODELS = {"blog_cnn": build_blog_cnn, "compact_cnn": build_compact_cnn, "resnet": build_resnet,
          "fast_cnn": build_fast_cnn, "pretrained_head": build_pretrained_head}
MODEL_OPTIONS = {"resnet": ("width", "blocks"), "fast_cnn": ("width", "dirac", "activation"),
                 "pretrained_head": ("width",)}   # builder options beyond the shared ones
MODEL_HELP = dict(catalog.MODEL_HELP)  # help texts live in the TensorFlow-free catalog
assert set(MODELS) == set(MODEL_HELP), "noisycore.catalog and models disagree on model names"


def _check_number(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not low <= value <= high:
        raise UserError(f"{name}={value!r} must be a number in [{low}, {high}]")


def build_model(name, *, input_shape, num_classes, dropout=1.0, batchnorm=True, weight_decay=0.0,
                seed=None, **options) -> keras.Model:
    """Build model ``name`` from ``MODELS``: images (B, H, W, C) float [0, 1] -> probabilities (B, K).

    ``options`` go to the builder (resnet: ``width``, ``blocks``; fast_cnn: ``width``). Seeded initializers: the same
    seed gives the same initial weights.
    """
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if catalog.takes_embeddings(name):   # embeddings (D,)
        if shape is None or len(shape) != 1 or not isinstance(shape[0], (int, np.integer)) or shape[0] < 1:
            raise UserError(f"input_shape={input_shape!r} must be (D,) for {name}: it trains on embeddings")
    elif shape is None or len(shape) != 3 or not all(isinstance(s, (int, np.integer)) for s in shape) \
            or min(shape[:2]) < 8 or shape[2] not in (1, 3):
        raise UserError(f"input_shape={input_shape!r} must be (H, W, C) with H, W >= 8 and C in (1, 3)")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise UserError(f"num_classes={num_classes!r} must be an integer >= 2")
    _check_number("dropout", dropout, 0.0, 2.0)
    _check_number("weight_decay", weight_decay, 0.0, 0.1)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise UserError(f"seed={seed!r} must be an integer or None")
    extra = sorted(set(options) - set(MODEL_OPTIONS.get(name, ())))
    if extra:
        raise UserError(f"model {name!r} takes no options {extra}; valid: {', '.join(MODEL_OPTIONS.get(name, ())) or 'none'}")
    return MODELS[name](input_shape=tuple(int(s) for s in shape), num_classes=int(num_classes),
                        dropout=dropout, batchnorm=bool(batchnorm), weight_decay=float(weight_decay),
                        seed=seed, **options)


def feature_extractor(model) -> keras.Model:
    """A model sharing ``model``'s weights that maps images (float [0, 1]) to its "features" layer (B, D)."""
    try:
        features = model.get_layer("features")
    except (ValueError, AttributeError):
        raise UserError(f"model {getattr(model, 'name', model)!r} has no layer named 'features'; "
                        "build it with noisycore.models.build_model") from None
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # a list would warn on call
    return keras.Model(inputs, features.output, name=f"{model.name}_features")
