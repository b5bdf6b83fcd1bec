"""vgsite verify: the pages' checks against rerun data, and the rerun itself on a cheap experiment."""
import json

from vgsite import verify

RECORDS = {"t/e": {"config": {"seeds": [0, 1, 2]}, "data": {"a": [0.9, 0.8, 0.95], "b": [0.5, 0.85, 0.4]}}}


def test_a_check_that_one_seed_decided_fails_and_names_the_page_and_line(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.md").write_text('# T\n\nA beats B in every seed.{{ check("t/e", "all(a > b)", "A beats B") }}\n'
                                  'A beats B on the median.{{ check("t/e", "median(a) > median(b)") }}\n')
    failures = verify.page_checks(lambda exp_id: RECORDS[exp_id], docs)
    assert len(failures) == 1
    assert failures[0].startswith("docs/page.md:3:") and "A beats B" in failures[0]


def test_rerun_shifts_the_seeds_and_returns_a_record_the_pages_can_read():
    exp = next(e for e in verify.trained_experiments() if e.id == "residual/depth-sweep")
    record = verify.rerun(exp.id, shift=7, threads=1)
    assert record["config"]["seeds"] == [s + 7 for s in exp.config["seeds"]]
    assert json.loads(json.dumps(record))["data"]
    assert verify.shifted((0, 1, 2), 1000) == (1000, 1001, 1002)
