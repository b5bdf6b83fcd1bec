"""The claims of the 'Number formats' page, on small configurations.

Expected values come from the formats themselves (IEEE 754 half precision: 5 exponent bits, 10 stored significand
bits; bfloat16: float32's 8 exponent bits, 7 stored significand bits) and from torch.amp.GradScaler's algorithm,
not from the outputs being checked.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from vgsite.nets import DeepMLP
from vgsite.registry import load
from vgsite.topics.precision import backward, limits, underflow
from vgsite.train import DynamicLossScale, digits, fit_amp

EXPERIMENTS = load()


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_the_format_limits_are_the_ieee_ones():
    half, bf = limits(torch.float16), limits(torch.bfloat16)
    assert half["subnormal"] == 2.0 ** -24 and half["normal"] == 2.0 ** -14 and half["max"] == 65504
    assert half["unit_roundoff"] == 2.0 ** -11
    assert bf["normal"] == 2.0 ** -126 and bf["unit_roundoff"] == 2.0 ** -8
    assert bf["max"] == pytest.approx(2.0 ** 128 * (1 - 2.0 ** -8))
    # the smallest subnormal really is the last nonzero float16; half of it rounds to 0 (ties to even)
    assert torch.tensor(half["subnormal"], dtype=torch.float16).item() > 0
    assert torch.tensor(half["subnormal"] / 2, dtype=torch.float16).item() == 0


def test_float16_loses_the_deep_layers_and_bfloat16_loses_nothing():
    seeds = (0, 1, 2)
    data = EXPERIMENTS["precision/histograms"](seeds=seeds).data
    assert data["outside_bins"] == 0  # every nonzero entry is in the histograms drawn
    u16 = data["formats"]["float16"]["underflow"]
    assert min(u16["min"][:4]) == 1.0  # every nonzero gradient entry of layers 1-4 is 0 in float16
    assert u16["max"][-1] == 0.0  # the last layer is untouched
    assert max(data["formats"]["bfloat16"]["underflow"]["max"]) == 0.0  # float32's exponent range: nothing underflows
    # the real float16 backward loses at least what rounding the exact weight gradient once would
    for measured, predicted in zip(u16["median"], data["predicted_underflow"]["median"]):
        assert measured >= predicted - 0.05
    # the bar at 0 sits where the float32 values lie below half the smallest subnormal
    half_tiny = limits(torch.float16)["subnormal"] / 2
    assert data["median_abs_grad"]["median"][0] < half_tiny  # layer 1 lies wholly below it
    assert data["median_abs_grad"]["median"][-1] > limits(torch.float16)["normal"]  # layer 10 among the normals
    # the loss scale pulls layer 1 back
    assert data["formats"]["float16 scaled"]["underflow"]["max"][0] < 0.1


def test_a_power_of_two_scale_moves_the_histogram_right_by_that_factor():
    torch.manual_seed(0)
    model = DeepMLP(10, 64, activation="sigmoid", d_in=64)
    x, y, _, _ = digits()
    x, y = x[:64], y[:64]
    plain = backward(model, x, y, torch.float16)["weight"]
    scaled = backward(model, x, y, torch.float16, 2.0 ** 10)["weight"]
    for p, s in zip(plain[7:], scaled[7:]):  # layers 8-10, which float16 holds (mostly normal) without scaling
        both = (p != 0) & (s != 0)
        shift = torch.log2(s[both].abs() / p[both].abs())
        # 2^10 changes only the exponent; what moves entries off it is rounding on the way, coarser among the
        # subnormals (where part of the unscaled values lie)
        assert shift.median().item() == pytest.approx(10, abs=0.01)
    # the last layer's entries, nearly all normal without scaling, all move by 2^10 to within 1%
    assert (torch.log2(scaled[-1].abs() / plain[-1].abs()) - 10).abs().max().item() < 0.01


def test_the_overflow_scale_is_where_theory_puts_it_and_below_it_little_underflows():
    data = EXPERIMENTS["precision/loss-scaling"](seeds=(0, 1, 2), log2_scales=tuple(range(0, 26))).data
    for measured, predicted in zip(data["first_overflow_log2"], data["predicted_overflow_log2"]["per_seed"]):
        # overflow at the first power of two above float16 max / largest gradient (±1 for rounding on the way)
        assert abs(measured - math.ceil(predicted)) <= 1
    assert max(data["underflow_at_largest_safe"]["max"]) < 0.01
    assert min(data["underflow_unscaled"]["min"][:4]) == 1.0
    assert max(data["underflow_bfloat16"]["max"]) == 0.0


def test_bfloat16_pays_in_precision_about_the_ratio_of_the_unit_roundoffs():
    data = EXPERIMENTS["precision/rounding"](seeds=(0, 1, 2)).data
    ratio_of_roundoffs = limits(torch.bfloat16)["unit_roundoff"] / limits(torch.float16)["unit_roundoff"]
    assert ratio_of_roundoffs == 8
    assert ratio_of_roundoffs / 3 < data["bf16_over_fp16"]["median"] < 3 * ratio_of_roundoffs
    err = data["relative_error"]
    # the errors accumulate over the backward pass: above one rounding in every layer
    assert min(err["bfloat16"]["min"]) > limits(torch.bfloat16)["unit_roundoff"]
    assert min(err["float16, loss scaled"]["min"]) > limits(torch.float16)["unit_roundoff"]
    # in the layers the scale brought into the normal range, bfloat16's error is the larger in every seed
    for fp16, bf16 in zip(data["by_layer"]["float16, loss scaled"][2:], data["by_layer"]["bfloat16"][2:]):
        assert all(b > f for b, f in zip(bf16, fp16))


def test_dynamic_loss_scale_is_torch_gradscalers_algorithm():
    data = digits()
    scales = {}
    for which in ("ours", "torch"):
        torch.manual_seed(0)
        model = DeepMLP(10, 32, activation="sigmoid", d_in=64)
        params = list(model.parameters())
        opt = torch.optim.SGD(params, lr=0.1)
        ours = DynamicLossScale(2.0 ** 24, interval=3)
        theirs = torch.amp.GradScaler("cpu", init_scale=2.0 ** 24, growth_interval=3)
        gen = torch.Generator().manual_seed(0)
        seen = []
        for _ in range(25):
            idx = torch.randint(0, len(data[0]), (64,), generator=gen)
            with torch.autocast("cpu", dtype=torch.float16):
                loss = F.cross_entropy(model(data[0][idx]), data[1][idx])
            opt.zero_grad()
            if which == "ours":
                seen.append(ours.scale)
                (loss * ours.scale).backward()
                finite = ours.unscale(params)
                if finite:
                    opt.step()
                ours.update(finite)
            else:
                seen.append(theirs.get_scale())
                theirs.scale(loss).backward()
                theirs.step(opt)
                theirs.update()
        scales[which] = (seen, torch.cat([p.detach().flatten() for p in params]))
    assert scales["ours"][0] == scales["torch"][0]
    assert min(scales["ours"][0]) < 2.0 ** 24 and len(set(scales["ours"][0])) > 2  # it backed off and grew
    torch.testing.assert_close(scales["ours"][1], scales["torch"][1])


def test_training_without_scaling_freezes_the_first_layers_and_dynamic_scaling_recovers():
    data = EXPERIMENTS["precision/dynamic"](steps=30, interval=10, every=10).data
    runs = data["runs"]
    assert len(data["seeds"]) >= 3
    assert all(c == 0 for c in runs["float16, no scaling"]["first_layer_change"])  # Adam moves no zero gradient
    assert all(c > 0 for c in runs["float16, dynamic scaling"]["first_layer_change"])
    # from 2^24 the scale halves, skipping each step, until float16 holds the gradients: 2^24 overflows
    limit16 = limits(torch.float16)["max"]
    assert all(n >= 1 for n in runs["float16, dynamic scaling"]["opening_skips"])
    assert not any(runs["float32"]["n_skipped"]) and not any(runs["bfloat16, no scaling"]["n_skipped"])
    for fp32, bf in zip(runs["float32"]["first_layer_change"], runs["bfloat16, no scaling"]["first_layer_change"]):
        assert bf == pytest.approx(fp32, rel=0.2)
    assert limit16 == 65504


def test_clip_grad_norm_returns_a_nonfinite_norm_silently_unless_told():
    data = EXPERIMENTS["precision/clip-trap"](seeds=(0, 1, 2)).data
    assert not any(data["raised"]) and not any(data["norm_is_finite"])
    assert min(data["nan_weights_after_step"]) == 1.0  # one step and every weight is nan
    assert all(data["raised_with_flag"]) and "non-finite" in data["message"]
    assert all(data["scaler_skipped"]) and all(data["weights_finite_with_scaler"])
