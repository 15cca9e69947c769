"""The paper's autoencoder: an 8-level encoder whose feature maps feed the Param-Net.

Encoder: a 3x3 convolution (1 -> 64) with LeakyReLU(0.2), then seven 3x3 stride-2
convolutions with BatchNorm and LeakyReLU(0.2), channels 64, 128, 256, 512, 512, 512,
512; convolutions have no bias and BatchNorm uses momentum 0.5. On a 256x256 input the
eight feature maps are 256, 128, ..., 2 pixels wide. Decoder (only used to train the
autoencoder): seven 3x3 stride-2 transposed convolutions with BatchNorm and ReLU,
channels 512, 512, 512, 256, 128, 64, 32, then 3x3 (32 -> 16) + BatchNorm + ReLU, a 1x1
convolution to one channel and tanh. ``width`` scales every channel count.
"""

from __future__ import annotations

from torch import nn

ENCODER_CHANNELS = (64, 64, 128, 256, 512, 512, 512, 512)
DECODER_CHANNELS = (512, 512, 512, 256, 128, 64, 32)
BN_MOMENTUM = 0.5


def scaled(channels, width: float) -> list[int]:
    """Channel counts times ``width``, rounded, at least 1."""
    return [max(1, round(c * width)) for c in channels]


class Encoder(nn.Module):
    """Returns the list of its eight feature maps, finest first."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        ch = scaled(ENCODER_CHANNELS, width)
        self.channels = ch
        layers = [nn.Sequential(nn.Conv2d(1, ch[0], 3, padding=1, bias=False), nn.LeakyReLU(0.2))]
        for cin, cout in zip(ch[:-1], ch[1:]):
            layers.append(nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
                nn.LeakyReLU(0.2),
            ))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class Decoder(nn.Module):
    """From the deepest feature map back to a one-channel image in [-1, 1]."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        cin = scaled(ENCODER_CHANNELS, width)[-1]
        blocks = []
        for cout in scaled(DECODER_CHANNELS, width):
            blocks += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
                       nn.BatchNorm2d(cout, momentum=BN_MOMENTUM), nn.ReLU()]
            cin = cout
        c16 = max(1, round(16 * width))
        blocks += [nn.Conv2d(cin, c16, 3, padding=1, bias=False), nn.BatchNorm2d(c16, momentum=BN_MOMENTUM),
                   nn.ReLU(), nn.Conv2d(c16, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*blocks)

    def forward(self, deepest):
        return self.net(deepest)


class Autoencoder(nn.Module):
    """Encoder and decoder; ``forward`` reconstructs the input."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.width = width
        self.encoder = Encoder(width)
        self.decoder = Decoder(width)

    def forward(self, x):
        return self.decoder(self.encoder(x)[-1])
