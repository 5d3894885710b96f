"""The FID Inception-v3 (TensorFlow 2015-12-05 graph), for FID / KID / IS comparable with published numbers.

No weights ship with this project and nothing is downloaded. Users who have pytorch-fid's weights file
``pt_inception-2015-12-05-6726825d.pth`` (a plain state dict, released with mseitzer/pytorch-fid) load it with
:func:`load_fid_inception`; it is read with ``torch.load(..., weights_only=True)``, so a file can never run code.

The architecture is Inception-v3 with 1008 classes and no auxiliary head, with the quirks of the TF graph that the
FID reference used (as documented by pytorch-fid): the pooling branches of the A / C / first E blocks average
without counting padded zeros (``count_include_pad=False``), the last E block (``Mixed_7c``) max-pools in its pool
branch, inputs are resized to 299x299 bilinearly (``align_corners=False``) and fed in ``[-1, 1]``. Parameter and
buffer names equal torchvision's / pytorch-fid's (``Conv2d_1a_3x3.conv.weight``,
``Mixed_7c.branch_pool.bn.running_var``, ``fc.weight``...), so the state dict loads by name.

Note: NVIDIA's stylegan2-ada ``inception-2015-12-05.pt`` is a TorchScript archive, not a state dict, and is refused
(loading it would mean executing its code). Its features equal these up to its own resize implementation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganmodels.metrics import ImageBatch, to_float_images
from ganmodels.modelfile import state_dict_problems

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
NUM_CLASSES = 1008
FEATURE_DIM = 2048
INPUT_SIZE = 299

# --------------------------------------------------------------------------------------------------------------
# Building blocks (names equal torchvision's Inception3 so that state dicts load by key)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, I, H, W] -> [N, O, H', W']
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:  # TF's SAME average pool: padded zeros are not counted
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 -> 224 + pool_features channels."""

    def __init__(self, in_channels: int, *, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, I, 35, 35] -> [N, 224 + P, 35, 35]
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 -> 480 + in_channels channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, I, 35, 35] -> [N, 480 + I, 17, 17]
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3d, bp], dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions -> 768 channels."""

    def __init__(self, in_channels: int, *, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 768, 17, 17] -> [N, 768, 17, 17]
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b7, b7d, bp], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2 -> 512 + in_channels channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 768, 17, 17] -> [N, 1280, 8, 8]
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 convolutions -> 2048 channels.

    ``pool="avg"`` (Mixed_7b: average without padded zeros) or ``pool="max"`` (Mixed_7c: the TF graph's max pool).
    """

    def __init__(self, in_channels: int, *, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, I, 8, 8] -> [N, 2048, 8, 8]
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)
        pooled = _avg_pool_3x3(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, b3d, bp], dim=1)


# --------------------------------------------------------------------------------------------------------------
# The network


class InceptionOutput(NamedTuple):
    features: torch.Tensor  # [N, 2048] pool3 features (FID / KID)
    logits: torch.Tensor  # [N, 1008] class logits (softmax -> Inception Score)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the TF 2015-12-05 graph used by FID: images ``[N, 3, H, W]`` in ``[-1, 1]`` -> features, logits.

    A freshly built model has random weights; use :func:`load_fid_inception` to get the real one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, images: torch.Tensor) -> InceptionOutput:  # [N, 3, H, W] in [-1, 1]
        x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = self.Conv2d_1a_3x3(x)  # [N, 32, 149, 149]
        x = self.Conv2d_2a_3x3(x)  # [N, 32, 147, 147]
        x = self.Conv2d_2b_3x3(x)  # [N, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 64, 73, 73]
        x = self.Conv2d_3b_1x1(x)  # [N, 80, 73, 73]
        x = self.Conv2d_4a_3x3(x)  # [N, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [N, 192, 35, 35]
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # [N, 288, 35, 35]
        x = self.Mixed_6a(x)  # [N, 768, 17, 17]
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # [N, 768, 17, 17]
        x = self.Mixed_7a(x)  # [N, 1280, 8, 8]
        x = self.Mixed_7c(self.Mixed_7b(x))  # [N, 2048, 8, 8]
        features = x.mean(dim=(2, 3))  # [N, 2048]
        return InceptionOutput(features=features, logits=self.fc(features))


def _expected_shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


def load_fid_inception(path: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` into it.

    The file is read with ``weights_only=True`` (never unpickles code). A file that is not a state dict with exactly
    this architecture's keys and shapes raises ValueError naming the problem. The model is returned in eval mode
    with gradients disabled.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # unpickling errors, TorchScript archives, truncated files...
        raise ValueError(
            f"{os.fspath(path)!r} is not a weights-only PyTorch state dict ({type(e).__name__}: {e}). Expected "
            f"pytorch-fid's {FID_WEIGHTS_FILENAME}; TorchScript files such as stylegan2-ada's inception-2015-12-05.pt "
            "are not supported."
        ) from e
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{os.fspath(path)!r} does not hold a state dict of tensors (got {type(state).__name__})")

    model = FIDInceptionV3()
    expected = _expected_shapes(model)
    optional = {k for k in expected if k.endswith("num_batches_tracked")}  # absent in older / ported files
    problems = state_dict_problems(expected, state, optional=optional)
    if problems:
        what = f"{os.fspath(path)!r} is not the FID Inception-v3 state dict ({FID_WEIGHTS_FILENAME})"
        raise ValueError(f"{what}: " + "; ".join(problems))
    full = dict(model.state_dict())
    full.update(state)
    model.load_state_dict(full, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device)


# --------------------------------------------------------------------------------------------------------------
# Metric helpers


class InceptionFeatures:
    """:class:`ganmodels.metrics.FeatureExtractor` giving the 2048-d pool3 features (the standard FID / KID space)."""

    name = "inception_v3_2015_pool3"

    def __init__(self, model: FIDInceptionV3) -> None:
        self.model = model

    def __call__(self, images: torch.Tensor) -> torch.Tensor:  # [N, 3, H, W] in [-1, 1] -> [N, 2048]
        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model.eval()(images.to(device, torch.float32)).features.cpu()


def compute_inception_probs(model: FIDInceptionV3, images: ImageBatch, *, batch_size: int = 32) -> np.ndarray:
    """Softmax class probabilities ``[N, 1008]`` (float64) for :func:`ganmodels.metrics.inception_score`.

    Images are uint8 ``[N, H, W, C]`` or float ``[N, C, H, W]`` in ``[-1, 1]``.
    """
    device = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, int(images.shape[0]), batch_size):
            logits = model(to_float_images(images[i : i + batch_size]).to(device)).logits  # [B, 1008]
            out.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
    return np.concatenate(out)
