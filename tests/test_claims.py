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
SOURCES = (DOCS / "sources.md").read_text()
# The four verdicts, their glyphs and the class of the summary table's verdict cell.
VERDICTS = {"holds": ("✓", "vg-holds"), "holds with conditions": ("≈", "vg-conditions"),
            "disputed": ("⚖", "vg-disputed"), "wrong": ("✗", "vg-wrong")}
ARTICLES = {"post": "the text-networks post", "intro": "the long introduction", "explainer": "the short explainer",
            "summary": "the three-paragraph summary", "notes": "the lecture notes"}


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
    m = re.match(r"\s*:\s+([✓≈✗⚖]) \*\*(holds with conditions|holds|disputed|wrong)\*\* · (.+)", body)
    assert m, body[:120]
    assert VERDICTS[m.group(2)][0] == m.group(1), f"the glyph {m.group(1)} does not go with '{m.group(2)}'"
    return m.group(2)


def articles_of(body) -> set:
    line = re.match(r"\s*:\s+\S+ \*\*[^*]+\*\* · (.+)", body).group(1)
    if line.startswith("all five articles"):
        return set(ARTICLES)
    return {short for short, long in ARTICLES.items() if long in line}


def summary_rows():
    """The summary table's rows: (claim number, sources cell, verdict cell)."""
    rows = re.findall(r"(?m)^\| \[C(\d+)\]\(#c(\d+)\) \| (.+?) \| (.+?) \| (.+?) \|$", LEDGER)
    for n, anchor, *_ in rows:
        assert n == anchor, f"the summary row C{n} links #c{anchor}"
    return [(int(n), sources, cell) for n, _, _, sources, cell in rows]


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


def counts() -> dict:
    found = {v: [] for v in VERDICTS}
    for n, body in claims():
        found[verdict(body)].append(n)
    return found


def test_the_summary_counts_match_the_entries():
    found = counts()
    m = re.search(r"\*\*(\d+) claims\*\*: (\d+) holds?, (\d+) holds? with conditions, (\d+) (?:is|are) disputed, "
                  r"(\d+) (?:is|are) wrong", LEDGER)
    assert m, "the summary line is missing"
    assert [int(g) for g in m.groups()] == [len(claims()), len(found["holds"]), len(found["holds with conditions"]),
                                            len(found["disputed"]), len(found["wrong"])]


def test_the_summary_names_every_wrong_and_every_disputed_claim():
    found = counts()
    paragraph = re.search(r"(?ms)^\*\*\d+ claims\*\*:.*?\n\n", LEDGER).group(0)
    wrong = re.search(r"The wrong ones are\s+(.*?);", paragraph, re.S).group(1)
    assert sorted(int(n) for n in re.findall(r"\[C(\d+)\]", wrong)) == found["wrong"]
    disputed = re.search(r"the disputed (?:one|ones),\s+(.*?),\s", paragraph, re.S).group(1)
    assert sorted(int(n) for n in re.findall(r"\[C(\d+)\]", disputed)) == found["disputed"]


def test_the_summary_table_lists_every_claim_with_its_verdict_and_sources():
    blocks = dict(claims())
    rows = summary_rows()
    assert [n for n, _, _ in rows] == sorted(blocks), "the table has one row per claim, in order"
    for n, sources, cell in rows:
        v = verdict(blocks[n])
        glyph, css = VERDICTS[v]
        assert cell == f'<span class="vg-v {css}">{glyph} {v}</span>', f"C{n}: the table says {cell}, the entry {v}"
        named = set(ARTICLES) if sources == "all five" else {s.strip() for s in sources.split(",")}
        assert named == articles_of(blocks[n]), f"C{n}: the table's sources {sources} differ from the entry's"


def test_the_filter_offers_every_verdict_with_its_count():
    found = counts()
    labels = dict(re.findall(r'<label for="vg-show-(\w+)">[^<]*?\((\d+)\)</label>', LEDGER))
    assert labels.pop("all") == str(len(claims()))
    assert labels == {VERDICTS[v][1].removeprefix("vg-"): str(len(found[v])) for v in VERDICTS}
    css = (DOCS / "css" / "vgsite.css").read_text()
    for v, (_, klass) in VERDICTS.items():
        name = klass.removeprefix("vg-")
        assert f"#vg-show-{name}:checked) tbody tr:not(:has(.{klass}))" in css, f"no filter rule for '{v}'"


def test_every_verdict_has_its_reason():
    for n, body in claims():
        reason = re.split(r"\*\*Test:\*\*[^\n]*\n", body, maxsplit=1)[1]
        words = re.sub(r"\{\{.*?\}\}", " 1 ", reason, flags=re.S).split()
        assert len(words) >= 20, f"C{n} gives no reason for its verdict"
        if verdict(body) == "disputed":  # both sides of the dispute, each linked to its paper
            assert len(set(re.findall(r"\(sources\.md#([\w-]+)\)", reason))) >= 2, f"C{n}: name both sides"
        if verdict(body) != "holds" and n not in (8, 9):  # a condition or an error, with data or a paper behind it
            assert "{{ value(" in reason or "sources.md#" in reason or "$" in reason, f"C{n}: what decides it?"


def test_the_revisions_match_the_verdicts():
    section = LEDGER.split("## Revisions", 1)[1].split("\n## ", 1)[0]
    blocks = dict(claims())
    revised = re.findall(r"(?m)^- \[C(\d+)\]\(#c\d+\) ([✓≈✗⚖]) → ([✓≈✗⚖])", section)
    assert revised, "the revisions list is missing"
    glyph = {g: v for v, (g, _) in VERDICTS.items()}
    for n, old, new in revised:
        assert old != new
        assert verdict(blocks[int(n)]) == glyph[new], f"C{n}: the revisions say {new}, the entry differs"
    m = re.search(r"(\w+) verdicts were revised", LEDGER)
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    assert m and words.index(m.group(1).lower()) == len(revised)


def test_every_paper_cited_on_the_ledger_links_its_entry_on_the_sources_page():
    ids = paper_entries()
    for anchor in re.findall(r"\(sources\.md#([\w-]+)\)", LEDGER):
        assert anchor in ids or anchor in anchors(DOCS / "sources.md"), f"no entry #{anchor} on sources.md"
    # A citation by author and year that is not a link to the sources page is a citation a reader cannot follow.
    text = re.sub(r"\[[^\]]*\]\([^)]*\)", "", re.sub(r"(?ms)^```.*?^```", "", LEDGER))
    text = re.sub(r"\{\{.*?\}\}", "", text, flags=re.S)
    unlinked = re.findall(r"[A-Z][\w-]+(?: et al\.| & [A-Z][\w-]+)?,? \(?(?:19|20)\d\d\b", text)
    assert not unlinked, f"cite these as links to their entry on sources.md: {unlinked}"


def test_every_link_within_the_ledger_and_to_the_sources_page_finds_its_anchor():
    own, sources = anchors(DOCS / "claims.md"), anchors(DOCS / "sources.md")
    for page, anchor in re.findall(r"\]\((sources\.md|claims\.md|)#([\w-]+)\)", LEDGER + SOURCES):
        assert anchor in (sources if page == "sources.md" else own if page == "claims.md" else own | sources), \
            f"no anchor #{anchor} for the link to {page or 'this page'}"


def paper_entries() -> dict:
    """The sources page's paper entries: {anchor id: the entry's reference line}."""
    papers = SOURCES.split("## The papers", 1)[1].split("## Cite this site", 1)[0]
    entries = re.findall(r"(?m)^([A-Z][^\n]*\((?:19|20)\d\d\)\.[^\n]*)\n:   ", papers)
    assert len(entries) >= 30
    found = {}
    for line in entries:
        m = re.search(r"\{ #([a-z-]+-(?:19|20)\d\d[a-z]?) \}$", line)  # 2020a, 2020b: one author's two papers
        assert m, f"no anchor id on: {line[:80]}"
        assert m.group(1) not in found, f"two entries have the id #{m.group(1)}"
        found[m.group(1)] = line
    return found


def test_every_paper_on_the_sources_page_has_an_anchor_and_a_doi_or_arxiv_link():
    for anchor, line in paper_entries().items():
        surname = re.sub(r"-(?:19|20)\d\d[a-z]?$", "", anchor).replace("-", " ")
        assert line.lower().startswith(surname), f"#{anchor} does not name the first author of: {line[:60]}"
        year = re.search(r"\(((?:19|20)\d\d)\)", line).group(1)
        assert anchor.rstrip("ab").endswith(year), f"#{anchor} is not the entry's year ({year})"
        links = re.findall(r"\]\((https://[^)\s]+)\)", line)
        doi_or_arxiv = [u for u in links if re.match(r"https://(doi\.org/10\.\d{4,}/\S+|arxiv\.org/abs/\d{4}\.\d{4,5})$", u)]
        if not doi_or_arxiv:  # a few classics have neither: the entry says so and links the publisher's copy
            assert "No DOI or arXiv version" in line and links, f"#{anchor} has no DOI or arXiv link"


def test_the_sources_page_lists_as_errors_only_claims_the_ledger_does_not_uphold():
    blocks = dict(claims())
    for errors in re.findall(r"(?ms)^\*\*Errors:\*\*(.*?)(?=^\*\*[A-Z])", SOURCES):
        for n in re.findall(r"\(claims\.md#c(\d+)\)", errors):
            assert verdict(blocks[int(n)]) != "holds", f"sources.md lists C{n} as an error; the ledger says it holds"


def test_the_sources_page_has_a_cite_block_and_the_repository_a_citation_file():
    block = SOURCES.split("## Cite this site", 1)[1]
    assert "```bibtex" in block and "@misc{vgsite" in block
    cff = (DOCS.parent / ".github" / "CITATION.cff").read_text()
    for key in ("cff-version:", "message:", "title:", "authors:"):
        assert re.search(rf"(?m)^{key}", cff), f"CITATION.cff lacks {key}"


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
    data = EXPERIMENTS["claims/nonlinearity"](steps=200, seeds=(0, 1, 2)).data["nets"]
    linear, tanh = data["linear"]["test_accuracy"], data["tanh"]["test_accuracy"]
    assert len(linear["per_seed"]) == 3 and linear["min"] <= linear["median"] <= linear["max"]
    assert linear["max"] < 0.7  # a straight line through two rings: about chance
    assert tanh["min"] > 0.9


def test_trained_experiments_run_at_least_three_seeds():
    for exp in (e for e in EXPERIMENTS.values() if e.topic == "claims" and e.name == "nonlinearity"):
        assert len(exp.config["seeds"]) >= 3 and "seed" not in exp.config
