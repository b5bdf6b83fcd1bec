"""make bench's scoring (vgsite/bench.py) without Lighthouse: which pages are run again, and which run counts."""
from vgsite import bench


def lighthouse_row(performance):
    return {"performance": performance, "accessibility": 1.0, "bytes": 100_000, "fcp": 1800.0, "lcp": 1900.0,
            "tbt": 100.0, "cls": 0.0, "si": 1800.0, "costs": {"performance": [], "accessibility": []},
            "error": None}


def test_a_page_below_the_target_is_scored_by_its_median_run(monkeypatch):
    later = {"slow/": [0.97, 0.96], "unlucky/": [0.96, 0.97], "fast/": [0.50, 0.50]}
    asked = []

    def fake_lighthouse(base, paths):
        asked.append(sorted(paths))
        return {path: lighthouse_row(later[path].pop(0)) for path in paths}

    monkeypatch.setattr(bench, "run_lighthouse", fake_lighthouse)
    first = {"slow/": lighthouse_row(0.80), "unlucky/": lighthouse_row(0.90), "fast/": lighthouse_row(0.99)}
    scores = bench.rerun_below_target("http://127.0.0.1:1/vgsite/", first, runs=3)
    assert asked == [["slow/", "unlucky/"]] * 2  # the page at 0.99 is not run again
    assert scores["slow/"]["performance"] == 0.96 and scores["slow/"]["runs"] == [0.80, 0.97, 0.96]
    assert scores["unlucky/"]["performance"] == 0.96
    assert scores["fast/"]["performance"] == 0.99 and "runs" not in scores["fast/"]


def test_a_page_slow_in_most_runs_stays_below_the_target(monkeypatch, capsys):
    monkeypatch.setattr(bench, "run_lighthouse", lambda base, paths: {p: lighthouse_row(0.91) for p in paths})
    scores = bench.rerun_below_target("http://127.0.0.1:1/vgsite/", {"rnn/": lighthouse_row(0.89)}, runs=3)
    assert scores["rnn/"]["performance"] == 0.91
    row = {"page": "rnn/", "path": "rnn/", "raw": 1, "wire": 1, "files": 1, "kinds": {}, "lighthouse": scores["rnn/"]}
    failures = bench.report([row], lighthouse=True)
    assert len(failures) == 1 and failures[0].startswith("rnn/: performance 0.91")
    assert "rnn/: 0.89 0.91 0.91 -> median 0.91" in capsys.readouterr().out
