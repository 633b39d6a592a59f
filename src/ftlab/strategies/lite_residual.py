"""TinyTL's lite residual: a cheap side branch added to a frozen block's output.

Cai et al., "TinyTL: Reduce Memory, Not Parameters for Efficient On-Device Learning"
(NeurIPS 2020). The branch sees the block's input at half resolution, so the activations it
must keep for backward are a quarter of the block's; its last norm starts with zero scale, so
the network computes exactly what the backbone did until training moves it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class LiteResidual(nn.Module):
    """pool -> grouped k x k conv -> norm -> ReLU -> 1 x 1 conv (block stride) -> norm(γ=0),
    upsampled to the block's output size.

    Args:
        in_channels: Channels of the block's input.
        out_channels: Channels of the block's output.
        stride: The block's spatial stride (input size / output size).
        input_size: Spatial size of the block's input at the training resolution, used to
            shrink the kernel (and skip pooling) where the feature map is small.
        kernel_size: Largest kernel of the k x k convolution (odd).
        groups: Groups of the k x k convolution, reduced to a divisor of the channels.
        expand: Middle width as a multiple of `in_channels`.
        group_width: Channels per group of the k x k convolution; when set it replaces
            `groups` (in_channels / group_width groups).
        downsample: Pooling factor applied to the block's input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, input_size: int,
                 kernel_size: int = 5, groups: int = 2, expand: float = 1.0,
                 downsample: int = 2, group_width: int = 0) -> None:
        super().__init__()
        pooled = input_size // downsample
        if pooled <= 1:  # nothing left to pool over: TinyTL's global-pool, 1 x 1 case
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
            kernel_size = 1
        else:
            self.pool = nn.AvgPool2d(downsample, downsample)
            while kernel_size > pooled:
                kernel_size -= 2
        mid = max(8, int(round(in_channels * expand / 8)) * 8)
        if group_width:
            groups = max(1, in_channels // group_width)
        groups = math.gcd(math.gcd(in_channels, mid), groups)
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size, 1, kernel_size // 2,
                               groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, out_channels, 1, stride, 0, bias=False)
        self.final_bn = nn.BatchNorm2d(out_channels)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out")
        nn.init.zeros_(self.final_bn.weight)  # the branch adds exactly zero at the start

    def forward(self, x: torch.Tensor, output_size: torch.Size) -> torch.Tensor:
        y = self.final_bn(self.conv2(self.act(self.bn1(self.conv1(self.pool(x))))))
        if y.shape[-2:] != output_size:
            y = F.interpolate(y, size=output_size, mode="bilinear", align_corners=False)
        return y


def add_to_output(block: nn.Module, args: tuple[torch.Tensor, ...],
                  output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the block's output plus its branch applied to the block's input.

    A hook (rather than a wrapper module) keeps every original parameter name, so the
    backbone part of a TinyTL checkpoint still loads into a plain torchvision model.
    """
    return output + block.lite_residual(args[0], output.shape[-2:])


def probe_shapes(model: nn.Module, names: list[str], input_size: int
                 ) -> dict[str, tuple[torch.Size, torch.Size]]:
    """(input shape, output shape) of each named module for one image of `input_size` px."""
    shapes: dict[str, tuple[torch.Size, torch.Size]] = {}
    handles = []
    for name in names:
        def record(module, args, output, name=name):
            shapes[name] = (args[0].shape, output.shape)
        handles.append(model.get_submodule(name).register_forward_hook(record))
    was_training = model.training
    try:
        parameter = next(model.parameters())
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size, dtype=parameter.dtype,
                                     device=parameter.device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return shapes
