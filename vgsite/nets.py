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


class BranchBlock(nn.Module):
    """A residual block with a two-layer ReLU branch, for normalisation-free stacks (vgsite/topics/normfree.py):

        h_l = h_(l-1) + scale * alpha * f(h_(l-1)),   f(h) = W2 relu(norm(W1 h + b1)) + b2

    `scale` is a fixed number (1/sqrt(L) branch scaling); `alpha` a learnable scalar (initial value alpha0; SkipInit
    and ReZero start it at 0, Fixup's multiplier at 1) or absent (learn_alpha=False). `linear` is W1 (the name the
    probes and train.fit_stacked look for), `linear2` the branch's last layer W2. `z` keeps W1's output for the
    probes, as Block does.
    """

    def __init__(self, width, norm=None, scale=1.0, learn_alpha=False, alpha0=1.0):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = {None: nn.Identity, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}[norm](
            *([width] if norm else []))
        self.act = nn.ReLU()
        self.linear2 = nn.Linear(width, width)
        self.scale = float(scale)
        self.alpha = nn.Parameter(torch.full((1,), float(alpha0))) if learn_alpha else None
        self.residual, self.norm_first = True, False

    def _out(self, h, f, alpha):
        if alpha is not None:
            f = f * alpha
        return h + (f if self.scale == 1.0 else self.scale * f)

    def forward(self, h):
        z = self.norm(self.linear(h))
        self.z = z
        return self._out(h, self.linear2(self.act(z)), self.alpha)

    def stacked(self, net, pre, h, training):
        """The same block for train.fit_stacked, with the seeds stacked along the first axis of every tensor."""
        z = net.norm(f"{pre}.norm", self.norm, net.linear(f"{pre}.linear", h), training)
        alpha = net.param[f"{pre}.alpha"].view(-1, 1, 1) if self.alpha is not None else None
        return self._out(h, net.linear(f"{pre}.linear2", torch.relu(z)), alpha)


class ResidualMLP(LayerStack):
    """A linear stem (d_in -> width, N(0, 1/d_in)), `depth` BranchBlocks and a linear head: the residual stacks of
    the normalisation-free schemes. W1 is He-initialised (N(0, 2/width)) times `branch_gain` (Fixup scales it by
    depth^(-1/2) for two-layer branches), W2 is N(0, 1/width) or zero (`zero_last`), so that an unscaled branch
    adds about as much variance as the stream already has. `zero_head` zeroes the classifier (Fixup)."""

    def __init__(self, depth, width, norm=None, scale=1.0, learn_alpha=False, alpha0=1.0, zero_last=False,
                 branch_gain=1.0, zero_head=False, d_in=None, d_out=10):
        super().__init__("relu", norm)
        d_in = d_in or width
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(BranchBlock(width, norm, scale, learn_alpha, alpha0) for _ in range(depth))
        self.head = nn.Linear(width, d_out)
        init_linear(self.stem, "normal")
        for block in self.blocks:
            init_linear(block.linear, "kaiming", branch_gain)
            if zero_last:
                nn.init.zeros_(block.linear2.weight)
                nn.init.zeros_(block.linear2.bias)
            else:
                init_linear(block.linear2, "normal")
        if zero_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def inputs(self, x):
        return self.stem(x)
