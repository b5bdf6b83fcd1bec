"""The claims of the Transformers page, on small configurations."""
import math

import numpy as np
import pytest
import torch

from vgsite.registry import load
from vgsite.topics.transformers import (StackedTransformer, deepnorm_constants, encoder_layers, loglog_slope,
                                        rank_collapse, token_residual, train_stacked, warmup_schedule)

EXPERIMENTS = load()


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("variant", ["post", "pre"])
def test_the_stacked_model_computes_what_pytorchs_encoder_layers_compute(variant):
    seeds = (3, 4)
    model = StackedTransformer(seeds, depth=3, d_model=16, heads=2, variant=variant)
    x = torch.randn(len(seeds), 4, 8, 16)
    ours = x
    for p in model.layers:
        ours = model.block(ours, p)
    for i, seed in enumerate(seeds):
        z = x[i]
        for layer in encoder_layers(3, 16, 2, variant, seed):
            z = layer(z)
        assert torch.allclose(ours[i], z, atol=1e-5)


def test_deepnorm_constants_for_an_encoder():
    # Wang et al. (2022), encoder-only: alpha = (2N)^(1/4), beta = (8N)^(-1/4)
    alpha, beta = deepnorm_constants(18)
    assert alpha == pytest.approx(6 ** 0.5) and beta == pytest.approx(1 / 12 ** 0.5)


def test_last_layer_gradient_against_depth_follows_xiongs_theorem():
    # Xiong et al. (2020): the last layer's gradient scale is independent of L for Post-LN, falls as 1/sqrt(L) for
    # Pre-LN (slope -1/2 on log-log axes, approached as L grows).
    data = EXPERIMENTS["transformers/init-gradient"](depths=(4, 8, 32), d_model=32, batch=8).data
    post, pre = data["nets"]["Post-LN"], data["nets"]["Pre-LN"]
    assert abs(np.median(post["last_slope"])) < 0.2
    assert -0.7 < np.median(pre["last_slope"]) < -0.2
    assert np.all(post["last_slope"] > pre["last_slope"] + 0.2)
    # and so Post-LN's last layer gets the larger gradient in a deep stack
    assert np.all(post["last_layer"]["per_seed"][:, -1] > pre["last_layer"]["per_seed"][:, -1])


def test_loglog_slope_recovers_a_power_law():
    x = np.array([2, 4, 8, 16])
    assert loglog_slope(x, 3 * x ** -0.5)[0] == pytest.approx(-0.5)


def test_token_residual_is_zero_for_identical_tokens_and_scale_free():
    x = torch.randn(1, 64, dtype=torch.float64).expand(16, 64)
    assert token_residual(x).item() < 1e-12
    y = torch.randn(16, 64, dtype=torch.float64)
    assert token_residual(7 * y).item() == pytest.approx(token_residual(y).item())


def test_pure_attention_collapses_faster_than_exponentially_and_skips_prevent_it():
    # Dong et al. (2021): without skips the residual falls doubly exponentially (the bound cubes it each layer);
    # with skip connections it does not collapse.
    res = rank_collapse(8, (0, 1, 2), d_model=32, heads=2, length=8, batch=4)
    logs = np.log10(res["attention only"])
    decade_drops = -(np.diff(logs[:, :3], axis=1))  # decades lost in layers 1 and 2
    assert np.all(decade_drops[:, 1] > 3 * decade_drops[:, 0])  # the loss per layer grows: not a geometric decay
    assert np.all(res["attention only"][:, -1] < 1e-12)
    assert np.all(res["attention + skip"][:, -1] > 0.1)
    assert np.all(res["attention + skip + MLP"][:, -1] > 0.1)


def test_qk_layernorm_bounds_each_logit_by_sqrt_head_dim_at_unit_gain():
    # With LayerNorm on q and k (gain 1), |q.k| <= |q||k| = d_head, so a logit q.k/sqrt(d_head) <= sqrt(d_head).
    model = StackedTransformer((0,), depth=2, d_model=32, heads=4, qk_norm=True)
    with torch.no_grad():
        for p in model.layers:
            p["w_qkv"].mul_(50)  # huge queries and keys
        model(torch.randint(0, 16, (8, 8)))
    assert model.max_logit.item() <= math.sqrt(8) + 1e-4


def test_at_a_high_learning_rate_logits_grow_without_qk_layernorm_and_not_with_it():
    # Wortsman et al. (2023), small-scale proxy: attention-logit growth at a high learning rate, gone with qk-norm
    peaks = {}
    for qk in (False, True):
        model = StackedTransformer((0, 1, 2), depth=1, d_model=32, heads=4, qk_norm=qk)
        hist = train_stacked(model, [0.1] * 3, [20] * 3, 100, batch=16)
        peaks[qk] = np.nanmax(hist["max_logit"], axis=1)
    assert np.all(peaks[False] > 10 * peaks[True])
    assert np.all(peaks[True] < 2 * math.sqrt(8))


def test_warmup_schedule_is_linear_then_constant():
    assert [warmup_schedule(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_schedule(0, 0) == 1.0


def test_post_ln_needs_warmup_at_a_learning_rate_pre_ln_takes_without():
    # Xiong et al. (2020): Post-LN without warm-up trains worse at a learning rate where Pre-LN needs none.
    finals = {}
    for variant in ("post", "pre"):
        model = StackedTransformer((10, 11, 12) * 2, depth=6, d_model=32, heads=4, variant=variant)
        hist = train_stacked(model, [0.01] * 6, [0] * 3 + [40] * 3, 150, batch=8, seed=5)
        finals[variant] = np.nanmean(hist["loss"][:, -5:], axis=1)
    post_cold, post_warm = finals["post"][:3], finals["post"][3:]
    assert post_cold.min() > post_warm.max()
    assert finals["pre"][:3].max() < post_cold.min()
