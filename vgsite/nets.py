"""The deep networks every topic experiments on: one builder, many knobs."""
import math

import torch
from torch import nn

ACTIVATIONS = {
    "linear": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "prelu": lambda: nn.PReLU(init=0.25),
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
}

# default: PyTorch's own, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) -- Glorot & Bengio's "standard" initialisation.
# xavier: Glorot & Bengio's "normalised" U(+-sqrt(6/(fan_in+fan_out))).  kaiming: He et al. 2015, N(0, 2/fan_in).
# orthogonal: Saxe et al. 2014.  normal: N(0, gain^2/fan_in), the free weight scale.
INITS = ("default", "xavier", "kaiming", "orthogonal", "normal")
NORMS = (None, "batch", "layer")


def init_linear(layer: nn.Linear, init: str, gain: float = 1.0):
    """Initialise a Linear (or a Conv2d: fan-in counts its kernel too) by one of INITS, times gain."""
    if init == "default":
        if gain != 1.0:
            with torch.no_grad():
                layer.weight.mul_(gain)
        return
    w = layer.weight
    if init == "xavier":
        nn.init.xavier_uniform_(w, gain=gain)
    elif init == "kaiming":
        nn.init.kaiming_normal_(w, nonlinearity="relu")
        with torch.no_grad():
            w.mul_(gain)
    elif init == "orthogonal":
        nn.init.orthogonal_(w, gain=gain)
    elif init == "normal":
        nn.init.normal_(w, std=gain / math.sqrt(w[0].numel()))  # fan-in: w.shape[1] for a Linear
    else:
        raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class Block(nn.Module):
    """One layer: h = g(norm(W h_prev + b)), or h_prev + that when residual.

    With norm_first the normalisation moves onto the residual branch's input (pre-norm, as in transformers).
    """

    def __init__(self, d_in, d_out, activation, norm=None, residual=False, norm_first=False):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        norm_dim = d_in if norm_first else d_out
        self.norm = {None: nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm](
            *([norm_dim] if norm else []))
        self.act = ACTIVATIONS[activation]()
        self.residual = residual and d_in == d_out
        self.norm_first = norm_first

    def forward(self, h):
        if self.norm_first:
            z = self.linear(self.norm(h))
        else:
            z = self.norm(self.linear(h))
        self.z = z
        out = self.act(z)
        return h + out if self.residual else out


class LayerStack(nn.Module):
    """What DeepMLP and ConvNet share: checked settings, blocks with a head, and `forward(x, keep=True)`, which
    keeps every h_l (with its gradient) for the probes."""

    def __init__(self, activation, norm):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose from none, batch, layer")
        self.activation = activation
        self.hidden = []

    def initialise(self, init, gain):
        for block in self.blocks:
            init_linear(block.linear, init, gain)

    def inputs(self, x):
        return x

    def readout(self, h):
        return self.head(h)

    def forward(self, x, keep=False):
        self.hidden = []
        h = self.inputs(x)
        for block in self.blocks:
            h = block(h)
            if keep and h.requires_grad:
                h.retain_grad()
            if keep:
                self.hidden.append(h)
        return self.readout(h)

    @property
    def weights(self):
        return [block.linear.weight for block in self.blocks]


class DeepMLP(LayerStack):
    """`depth` blocks of `width` units and a linear head."""

    def __init__(self, depth, width, activation="tanh", init="default", gain=1.0, norm=None,
                 residual=False, norm_first=False, d_in=None, d_out=10):
        super().__init__(activation, norm)
        d_in = d_in or width
        self.blocks = nn.ModuleList(
            Block(d_in if i == 0 else width, width, activation, norm, residual, norm_first) for i in range(depth))
        self.head = nn.Linear(width, d_out)
        self.initialise(init, gain)


class ConvBlock(nn.Module):
    """One 3x3 convolution layer that keeps the image size: h = g(norm(conv(h_prev))), or h_prev + that when
    residual (and the shapes match). `z` keeps the pre-activations flattened per example, for the probes."""

    def __init__(self, c_in, c_out, activation, norm=None, residual=False):
        super().__init__()
        self.linear = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = {None: nn.Identity, "batch": nn.BatchNorm2d, "layer": lambda c: nn.GroupNorm(1, c)}[norm](
            *([c_out] if norm else []))
        self.act = ACTIVATIONS[activation]()
        self.residual = residual and c_in == c_out

    def forward(self, h):
        z = self.norm(self.linear(h))
        self.z = z.flatten(1)
        out = self.act(z)
        return h + out if self.residual else out


class ConvNet(LayerStack):
    """A small CNN for side x side images: `depth` 3x3 conv layers of `channels` channels, global average
    pooling and a linear head. The same interface as DeepMLP, so probes.gradient_flow and train.fit work on it
    unchanged (flat inputs of in_channels*side*side features are reshaped). norm "layer" is GroupNorm(1, C).
    The first layer maps in_channels to channels, so it never has a skip connection."""

    def __init__(self, depth, channels, activation="relu", init="default", gain=1.0, norm=None, residual=False,
                 in_channels=1, side=8, d_out=10):
        super().__init__(activation, norm)
        self.shape = (in_channels, side, side)
        self.blocks = nn.ModuleList(
            ConvBlock(in_channels if i == 0 else channels, channels, activation, norm, residual)
            for i in range(depth))
        self.head = nn.Linear(channels, d_out)
        self.initialise(init, gain)

    def inputs(self, x):
        return x.view(len(x), *self.shape) if x.dim() == 2 else x

    def readout(self, h):
        return self.head(h.mean(dim=(2, 3)))  # global average pooling
