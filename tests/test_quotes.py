"""Numbers on the pages come from the data: the template calls, and a scan of every page for typed numbers."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from vgsite import FIGURES, quotes

DOCS = Path(__file__).resolve().parent.parent / "docs"
RECORD = {"config": {"lr": 0.1, "seeds": [0, 1, 2]},
          "data": {"runs": {"plain + BN": {"acc": [0.41, 0.52, 0.47]}, "residual": {"acc": [0.93, 0.95, 0.9]}},
                   "ratio": -13.42, "loss": 0.000234, "flag": "nan"}}


def render(text, record=RECORD):
    return quotes.render(text, "page.md", lambda exp_id: record)


def test_value_reads_and_formats_the_data():
    assert render('{{ value("t/e", "ratio", ".1f") }}') == "-13.4"
    assert render("acc {{ value('t/e', \"median(runs['plain + BN'].acc)\", '.1%') }}") == "acc 47.0%"
    assert render('{{ value("t/e", "span(runs.residual.acc)", ".0%") }}') == "90%–95%"
    assert render('{{ value("t/e", "loss", ".2sci") }}') == "2.3 × 10⁻⁴"
    assert render('{{ value("t/e", "config.lr", "g") }}') == "0.1"
    assert render('{{ value("t/e", "\'higher\' if min(runs.residual.acc) > 0.5 else \'lower\'") }}') == "higher"
    assert render('{{ value("t/e", "flag", ".1f") }}') == "NaN"


def test_a_missing_key_names_the_page_the_call_and_the_keys_that_exist():
    with pytest.raises(quotes.QuoteError) as err:
        render('line one\nThe net reaches {{ value("t/e", "runs.plain.acc", ".1%") }}')
    message = str(err.value)
    assert message.startswith("page.md:2: value(")
    assert "no key 'plain' in runs" in message and "'plain + BN', 'residual'" in message


def test_check_renders_nothing_when_the_data_agrees_and_fails_naming_the_sentence_when_not():
    assert render('Residual wins in every seed.{{ check("t/e", "min(runs.residual.acc) > '
                  'max(runs[\'plain + BN\'].acc)") }}') == "Residual wins in every seed."
    with pytest.raises(quotes.QuoteError) as err:
        render('Plain wins in every seed.{{ check("t/e", "all(runs[\'plain + BN\'].acc > runs.residual.acc)", '
               '"plain beats residual") }}')
    assert "contradicts the sentence: plain beats residual" in str(err.value)
    assert "Plain wins in every seed." in str(err.value)


@pytest.mark.parametrize("expr", ["__import__('os')", "runs.__class__", "open('x')", "[x for x in runs]",
                                  "lambda: 1"])
def test_expressions_cannot_reach_beyond_the_data(expr):
    with pytest.raises(quotes.QuoteError):
        render(f'{{{{ value("t/e", "{expr}") }}}}')


def test_an_untrusted_record_gets_one_clear_line(tmp_path):
    bad = tmp_path / "e.json"
    bad.write_text('{"data": [1, 2')
    with pytest.raises(quotes.QuoteError, match="not valid JSON"):
        quotes.read_record(bad)
    bad.write_text("[1, 2, 3]")
    with pytest.raises(quotes.QuoteError, match="not an experiment record"):
        quotes.read_record(bad)


# ---- No measured number is typed into a page.

NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\.\d+|\d+(?=%))(%?)")
# A page lists the numbers it types on purpose -- theory constants, settings -- in a comment, with the reason:
#   <!-- typed: 0.25 (the largest slope of the sigmoid), 1.0507 (SELU's scale) -->
TYPED_ON_PURPOSE = re.compile(r"<!--\s*typed:(.*?)-->", re.S)


def pages():
    return sorted(p for p in DOCS.glob("*.md"))


def records_of(page: Path, text: str) -> dict:
    """The experiments a page draws on: its own topic's, and every one it names in a template or figure."""
    ids = set(re.findall(r'["\']([\w-]+/[\w-]+)["\']', text))
    ids |= {f"{p.parent.name}/{p.stem}" for p in (FIGURES / page.stem).glob("*.json")}
    found = {}
    for exp_id in sorted(ids):
        path = FIGURES / f"{exp_id}.json"
        if path.exists():
            found[exp_id] = json.loads(path.read_text())
    return found


def measured_values(record: dict) -> np.ndarray:
    """Non-integer numbers of the record's data, from scalars and short lists (not long training histories)."""
    found = []

    def walk(obj):
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            if len(obj) <= 12:
                for v in obj:
                    walk(v)
        elif isinstance(obj, float) and not obj.is_integer():
            found.append(obj)

    walk(record.get("data", {}))
    settings = {v for v in record.get("config", {}).values() if isinstance(v, float)}
    return np.array([v for v in found if v not in settings])


def prose(text: str) -> list[str]:
    """The typed parts of a page: code, templates, figure tags and links' targets removed."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"\]\([^)]*\)|href=\"[^\"]*\"", "]", text)
    return re.split(r"\{\{.*?\}\}", text, flags=re.S)


def significant_digits(token: str) -> int:
    """'0.03' has one: too short to tell a measurement from a setting, so it is not scanned."""
    return len(token.replace(".", "").lstrip("0"))


def matches(token: str, percent: str, values: np.ndarray) -> bool:
    number = float(token)
    decimals = len(token.split(".")[1]) if "." in token else 0
    tolerance = 0.5 * 10 ** -decimals
    candidates = np.abs(values) * (100 if percent else 1)
    return bool(np.any(np.abs(candidates - number) <= tolerance * 1.0001))


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_no_measured_number_is_typed(page):
    text = page.read_text()
    values = np.concatenate([measured_values(r) for r in records_of(page, text).values()] or [np.array([])])
    allowed = {n for c in TYPED_ON_PURPOSE.findall(text) for n in re.findall(r"(?<![\w.(])[\d.]+%?", c)}
    typed = [m.group(0) for part in prose(TYPED_ON_PURPOSE.sub("", text)) for m in NUMBER.finditer(part)
             if significant_digits(m.group(1)) >= 2 and matches(m.group(1), m.group(2), values)
             and m.group(0) not in allowed]
    assert not typed, (f"{page.name} types numbers that its experiments measured; render them with "
                       f"{{{{ value(...) }}}}: {', '.join(sorted(set(typed)))}")


def perturbed(record: dict, factor=1.37) -> dict:
    def walk(obj):
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj * factor if isinstance(obj, float) and not obj.is_integer() else obj

    return {**record, "data": walk(record.get("data", {}))}


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_every_rendered_number_moves_with_the_data(page):
    """Render the page's templates from the real and from perturbed JSON: each rendered number must change."""
    text = page.read_text()
    calls = [m for m in quotes.TEMPLATE.finditer(text) if m.group(1) == "value"]
    if not calls:
        pytest.skip("no value() on this page")
    records = records_of(page, text)
    for call in calls:
        real = quotes.render(call.group(0), page.name, lambda e: records[e])
        moved = quotes.render(call.group(0), page.name, lambda e: perturbed(records[e]))
        numbers = re.findall(r"\d+\.\d+", real)
        if numbers and real == moved and not all(float(n).is_integer() for n in numbers):
            pytest.fail(f"{page.name}: {call.group(0)} renders {real} whatever the data say")


def test_keys_that_are_no_python_names_are_reached_through_data():
    record = {"data": {"plain + BN": {"acc": [0.5, 0.7, 0.6]}}, "config": {}}
    assert render('{{ value("t/e", "median(data[\'plain + BN\'].acc)", ".0%") }}', record) == "60%"


def test_records_come_from_the_first_folder_that_holds_them_and_ids_are_no_paths(tmp_path):
    scratch, figures = tmp_path / "scratch", tmp_path / "figures"
    for folder, acc in ((scratch, 0.9), (figures, 0.1)):
        (folder / "t").mkdir(parents=True)
        (folder / "t" / "e.json").write_text(json.dumps({"data": {"acc": acc}}))
    (figures / "t" / "only.json").write_text(json.dumps({"data": {"acc": 0.5}}))
    records = quotes.records_in(scratch, figures)
    assert records("t/e")["data"]["acc"] == 0.9
    assert records("t/only")["data"]["acc"] == 0.5
    with pytest.raises(quotes.QuoteError, match="not an experiment id"):
        records("../t/e")
    with pytest.raises(quotes.QuoteError, match="does not exist"):
        records("t/missing")
