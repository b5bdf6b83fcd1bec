"""The claims ledger: its own experiments' numbers, on small configurations, and the ledger's bookkeeping."""
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from markdown.extensions.toc import slugify

from vgsite.registry import TOPICS, load

EXPERIMENTS = load()
DOCS = Path(__file__).resolve().parent.parent / "docs"
LEDGER = (DOCS / "claims.md").read_text()
VERDICTS = ("holds with conditions", "holds", "wrong")


def claims():
    """Each claim block: (number, its text up to the next claim or heading)."""
    starts = list(re.finditer(r"(?m)^\*\*C(\d+) · (.+?)\*\* \{ #c(\d+) \}$", LEDGER))
    blocks = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(LEDGER)
        body = LEDGER[m.end():end]
        body = re.split(r"(?m)^#", body)[0]
        assert m.group(1) == m.group(3), f"C{m.group(1)} has the id c{m.group(3)}"
        blocks.append((int(m.group(1)), body))
    return blocks


def verdict(body):
    m = re.match(r"\s*:\s+[✓≈✗] \*\*(holds with conditions|holds|wrong)\*\* · ", body)
    assert m, body[:120]
    return m.group(1)


def anchors(page: Path) -> set:
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
    found = set(re.findall(r"\{\s*#([\w-]+)\s*\}", text))
    for heading in re.findall(r"(?m)^#{1,6} (.+?)\s*$", text):
        explicit = re.search(r"\{\s*#([\w-]+)\s*\}\s*$", heading)
        if explicit:
            continue
        found.add(slugify(re.sub(r"[*`$]", "", heading), "-"))
    return found


def test_claims_is_the_last_topic():
    assert TOPICS[-1] == "claims"


def test_claims_are_numbered_in_order_and_each_has_one_verdict():
    blocks = claims()
    assert [n for n, _ in blocks] == list(range(1, len(blocks) + 1))
    assert len(blocks) >= 40
    for n, body in blocks:
        verdict(body)
        assert "**Test:**" in body, f"C{n} names no experiment"


def test_the_summary_counts_match_the_entries():
    counts = {v: 0 for v in VERDICTS}
    for _, body in claims():
        counts[verdict(body)] += 1
    m = re.search(r"\*\*(\d+) claims\*\*: (\d+) hold, (\d+) hold with conditions, (\d+) (?:are|is) wrong", LEDGER)
    assert m, "the summary line is missing"
    assert [int(g) for g in m.groups()] == [sum(counts.values()), counts["holds"], counts["holds with conditions"],
                                            counts["wrong"]]


def test_every_claim_links_an_existing_page_and_anchor():
    for n, body in claims():
        test_line = re.search(r"\*\*Test:\*\*(.*)", body).group(1)
        links = re.findall(r"\]\(([^)\s]*)\)", test_line)
        assert links, f"C{n} has no link to an experiment"
        for link in links:
            page, _, anchor = link.partition("#")
            target = DOCS / page if page else DOCS / "claims.md"
            assert target.is_file(), f"C{n}: {link}"
            if anchor:
                assert anchor in anchors(target), f"C{n}: no anchor #{anchor} in {target.name}"


def test_every_own_figure_is_on_the_ledger():
    for exp in (e for e in EXPERIMENTS.values() if e.topic == "claims"):
        assert f'{{{{ figure("claims/{exp.name}") }}}}' in LEDGER, exp.id


def test_small_weights_leave_units_unsaturated_and_large_weights_make_the_net_hypersensitive():
    torch.set_num_threads(1)
    data = EXPERIMENTS["claims/input-sensitivity"](depth=8, gains=(0.1, 0.2, 1.0, 10.0)).data
    tanh = data["nets"]["tanh"]
    sens, sat = tanh["sensitivity"], tanh["saturated_last_layer"]
    # In the linear regime every layer multiplies the response by the gain: doubling it gains 2^depth.
    assert math.log2(sens[1] / sens[0]) == pytest.approx(8, abs=0.5)
    assert sens[0] < 1e-6 and sens[3] > 10  # unresponsive with small weights, hypersensitive with large ones
    assert sat[0] == 0 and sat[1] == 0 and sat[3] > 0.3
    assert data["nets"]["sigmoid"]["saturated_last_layer"][0] == 0


def test_depth_doubles_the_pieces_and_one_hidden_layer_never_beats_n_plus_one():
    data = EXPERIMENTS["claims/depth-expressivity"](max_layers=6, points=2 ** 12, seeds=(0, 1)).data
    assert data["deep_construction"] == [2 ** k for k in range(1, 7)]
    assert all(r <= b for r, b in zip(data["random_shallow"], data["shallow_bound"]))
    assert data["deep_construction"][-1] > 2 * data["shallow_bound"][-1]
    assert all(r < d for r, d in zip(data["random_deep"][3:], data["deep_construction"][3:]))


def test_the_negative_gradient_lowers_the_loss_most():
    data = EXPERIMENTS["claims/descent-direction"](angles=7, directions=20).data
    swept = data["delta_swept"]
    assert swept[0] == min(swept) and swept[-1] == max(swept)
    # First order: a step s against the gradient lowers the loss by s * |grad|.
    assert swept[0] == pytest.approx(data["predicted_delta_steepest"], rel=0.1)
    assert 80 < data["random_angle_min"] and data["random_angle_max"] < 100
    assert max(abs(data["delta_random_min"]), abs(data["delta_random_max"])) < abs(swept[0]) / 5


def test_weight_scale_is_symmetric_and_batch_norm_explodes_whatever_the_scale():
    torch.set_num_threads(1)
    nets = EXPERIMENTS["claims/exploding-vs-vanishing"](depth=12, seeds=(0, 1)).data["nets"]
    small, he, large = nets["ReLU, N(0, 1/n)"], nets["ReLU, He N(0, 2/n)"], nets["ReLU, N(0, 4/n)"]
    for net in (small, he, large):
        assert net["no normalisation"]["log10_ratio"] == pytest.approx(net["predicted_no_norm"], abs=0.6)
        assert net["batch norm"]["log10_ratio"] == pytest.approx(net["predicted_batch_norm"], abs=0.4)
        assert net["batch norm + residual"]["log10_ratio"] < net["batch norm"]["log10_ratio"]
    assert small["no normalisation"]["log10_ratio"] < -1 < 1 < large["no normalisation"]["log10_ratio"]
    assert np.ptp([n["batch norm"]["log10_ratio"] for n in (small, he, large)]) < 0.05  # BN forgets the scale


def test_without_activations_a_deep_net_cannot_separate_two_rings():
    data = EXPERIMENTS["claims/nonlinearity"](steps=200).data["nets"]
    assert data["linear"]["test_accuracy"] < 0.7
    assert data["tanh"]["test_accuracy"] > 0.9
