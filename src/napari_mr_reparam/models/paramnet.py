"""The paper's Param-Net: a coarse-to-fine decoder fed by encoder features and parameters.

Eight blocks, (in -> out) channels 512->512, 512->512, 512->512, 512->256, 256->128,
128->64, 64->64, 64->32 (times ``width``). Block i: a 3x3 stride-2 transposed convolution
(in -> in); concatenation with the encoder's feature map of the same size (9 - i); a 3x3
convolution (2 in -> in) + InstanceNorm + LeakyReLU(0.2); concatenation with ``in``
channels of the parameter tensor; a 3x3 convolution (2 in -> in) + IN + LReLU; a 3x3
convolution (in -> out) + IN + LReLU. Head: 3x3 (32 -> 16) + IN + LReLU, 3x3 (16 -> 1),
tanh. Block 1's input is the parameter tensor itself at 1x1. The encoder's channel
counts (64, 64, 128, 256, 512, 512, 512, 512) match each block's ``in``, so every
concatenation doubles the channels exactly. InstanceNorm is affine (as Keras' instance
normalization layers are by default); the convolutions keep their biases.

The parameter tensor (as the authors built it) has 512 spatially constant channels of
raw seconds: for Default-to-Param channel j holds TE if j is even and TR if odd; for
Param-to-Param j % 4 = 0, 1, 2, 3 hold input TE, input TR, target TE, target TR.
``injection="naive"`` materializes it; ``injection="efficient"`` computes the same
function without it: a convolution over constant channels that repeat n values equals a
convolution over n constant maps with the kernel summed over each residue class of
channels (zero padding makes the border differ from the interior, which the n-map
convolution reproduces exactly). Both modes share one state dict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoencoder import scaled

BLOCK_CHANNELS = ((512, 512), (512, 512), (512, 512), (512, 256), (256, 128), (128, 64), (64, 64), (64, 32))
PARAM_CHANNELS = 512
INJECTIONS = ("efficient", "naive")


def _conv_in_lrelu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout, affine=True),
                         nn.LeakyReLU(0.2))


def _residue_sum(weight: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """Sum ``weight`` over channel indices of equal residue mod ``n`` along ``dim``."""
    c = weight.shape[dim]
    index = torch.arange(c, device=weight.device) % n
    shape = list(weight.shape)
    shape[dim] = n
    out = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
    return out.index_add_(dim, index, weight)


class ParamBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.cin = cin
        self.up = nn.ConvTranspose2d(cin, cin, 3, stride=2, padding=1, output_padding=1)
        self.merge = _conv_in_lrelu(2 * cin, cin)
        self.inject = _conv_in_lrelu(2 * cin, cin)
        self.out = _conv_in_lrelu(cin, cout)

    def param_conv(self, h, values, naive: bool):
        """The ``inject`` convolution over [h, parameter channels], without its norm/activation."""
        conv = self.inject[0]
        b, _, hgt, wid = h.shape
        n = values.shape[1]
        if naive:
            params = param_tensor(values, self.cin, hgt, wid)
            return conv(torch.cat([h, params], 1))
        w_h, w_p = conv.weight[:, : self.cin], conv.weight[:, self.cin:]
        const = values[:, :, None, None].expand(b, n, hgt, wid).to(h.dtype)
        return (F.conv2d(h, w_h, conv.bias, padding=1)
                + F.conv2d(const, _residue_sum(w_p, n, dim=1), padding=1))


def param_tensor(values: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """The authors' constant parameter tensor: channel j holds ``values[:, j % n]``."""
    n = values.shape[1]
    index = torch.arange(channels, device=values.device) % n
    return values[:, index, None, None].expand(-1, -1, height, width).contiguous()


class ParamNet(nn.Module):
    """Coarse-to-fine decoder from encoder features and acquisition parameters.

    Parameters
    ----------
    width : float
        Channel-width multiplier (1.0 = the paper).
    n_params : int
        2 for Default-to-Param (TE, TR), 4 for Param-to-Param.
    injection : {"efficient", "naive"}
    """

    def __init__(self, width: float = 1.0, n_params: int = 2, injection: str = "efficient"):
        super().__init__()
        if injection not in INJECTIONS:
            raise ValueError(f"injection must be one of {INJECTIONS}, got {injection!r}")
        self.n_params, self.injection = n_params, injection
        ins = scaled([c for c, _ in BLOCK_CHANNELS], width)
        outs = scaled([c for _, c in BLOCK_CHANNELS], width)
        self.param_channels = scaled([PARAM_CHANNELS], width)[0]
        if ins[0] != self.param_channels:
            raise ValueError("block 1 must take the parameter tensor's channel count")
        self.blocks = nn.ModuleList(ParamBlock(i, o) for i, o in zip(ins, outs))
        c16 = max(1, round(16 * width))
        self.head = nn.Sequential(_conv_in_lrelu(outs[-1], c16), nn.Conv2d(c16, 1, 3, padding=1), nn.Tanh())

    def _first_up(self, values, naive: bool):
        """Block 1's transposed convolution applied to the 1x1 parameter tensor."""
        up = self.blocks[0].up
        if naive:
            return up(param_tensor(values, self.param_channels, 1, 1))
        weight = _residue_sum(up.weight, self.n_params, dim=0)
        return F.conv_transpose2d(values[:, :, None, None].to(weight.dtype), weight, up.bias,
                                  stride=2, padding=1, output_padding=1)

    def forward(self, features: list, params: torch.Tensor) -> torch.Tensor:
        """``features``: the encoder's 8 maps (finest first); ``params``: (B, n) in seconds."""
        if params.shape[1] != self.n_params:
            raise ValueError(f"expected {self.n_params} parameters per image, got {params.shape[1]}")
        naive = self.injection == "naive"
        params = params.to(features[0].dtype)
        x = None
        for i, block in enumerate(self.blocks):
            skip = features[-1 - i]
            up = self._first_up(params, naive) if i == 0 else block.up(x)
            h = block.merge(torch.cat([up, skip], 1))
            h = block.inject[2](block.inject[1](block.param_conv(h, params, naive)))
            x = block.out(h)
        return self.head(x)
