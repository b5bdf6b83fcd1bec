"""Numbers on a page come from the experiments' JSON, never from the keyboard.

In docs/*.md:

    {{ value("residual/degradation", "median(runs['plain + BN, 56 layers'].final_test_acc)", ".1%") }}
    {{ check("residual/degradation", "max(a.acc) < min(b.acc)", "every residual seed beats every plain one") }}

`value` reads an expression over the experiment's record and formats it; `check` renders nothing but fails the
build, naming the page and the sentence, when the data contradicts what the sentence says. The expression is a
small, safe subset of Python: names are the keys of the record's `data` (and `config`), `a.b` and `a['b c']`
look keys up, `x[0]` and `x[-1]` index lists, lists of numbers are numpy arrays (so `a < b` compares seed by seed),
and only the functions in FUNCTIONS may be called. Theory constants may be typed on a page; measured numbers not.
"""
import ast
import json
import math
import operator
import re

import numpy as np

TEMPLATE = re.compile(r"\{\{\s*(value|check)\((.*?)\)\s*\}\}", re.S)

FUNCTIONS = {
    "median": lambda x, *a: np.median(np.asarray(x, dtype=float), *a),
    "mean": lambda x, *a: np.mean(np.asarray(x, dtype=float), *a),
    "min": lambda *x: np.min(x[0]) if len(x) == 1 else min(x),
    "max": lambda *x: np.max(x[0]) if len(x) == 1 else max(x),
    "span": lambda x: (float(np.min(x)), float(np.max(x))),  # rendered "low–high"
    "abs": np.abs,
    "all": lambda x: bool(np.all(x)),
    "any": lambda x: bool(np.any(x)),
    "len": len,
    "sum": np.sum,
    "log10": np.log10,
    "sqrt": np.sqrt,
    "round": round,
    "float": float,
    "int": int,
    "argmax": lambda x: int(np.argmax(x)),
    "argmin": lambda x: int(np.argmin(x)),
    "isfinite": np.isfinite,
}
OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


class QuoteError(ValueError):
    """What is wrong with one template call: shown with the page and the call."""


def as_value(obj):
    """JSON as the expressions see it: dicts stay, lists of numbers become float arrays ("nan", "inf" included)."""
    if isinstance(obj, dict):
        return {k: as_value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        items = [as_value(v) for v in obj]
        try:
            return np.asarray(items, dtype=float)
        except (TypeError, ValueError):
            return items
    if obj in ("nan", "inf", "-inf"):
        return float(obj)
    return obj


def lookup(container, key, where):
    if isinstance(container, dict):
        if key not in container:
            keys = ", ".join(repr(k) for k in sorted(container)) or "none"
            raise QuoteError(f"no key {key!r} in {where or 'the data'}; its keys: {keys}")
        return container[key]
    if isinstance(container, (list, tuple, np.ndarray)) and isinstance(key, (int, np.integer, slice)):
        try:
            return container[key]
        except IndexError:
            raise QuoteError(f"index {key} is out of range for {where} (length {len(container)})") from None
    raise QuoteError(f"cannot look up {key!r} in {where}, a {type(container).__name__}")


def evaluate(expr: str, names: dict):
    """Evaluate `expr` over `names` with nothing but lookups, arithmetic, comparisons and FUNCTIONS."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        raise QuoteError(f"cannot parse {expr!r}: {err.msg}") from None

    def path(node) -> str:
        return ast.unparse(node)

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return lookup(names, node.id, "")
        if isinstance(node, ast.Attribute):
            return lookup(ev(node.value), node.attr, path(node.value))
        if isinstance(node, ast.Subscript):
            return lookup(ev(node.value), ev(node.slice), path(node.value))
        if isinstance(node, ast.Slice):
            return slice(*(ev(p) if p is not None else None for p in (node.lower, node.upper, node.step)))
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
            return OPERATORS[type(node.op)](ev(node.operand))
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            return all(np.all(v) for v in values) if isinstance(node.op, ast.And) else \
                any(np.all(v) for v in values)
        if isinstance(node, ast.Compare):
            left, result = ev(node.left), True
            for op, right_node in zip(node.ops, node.comparators):
                if type(op) not in OPERATORS:
                    break
                right = ev(right_node)
                result = result & OPERATORS[type(op)](left, right)
                left = right
            else:
                return result
        if isinstance(node, ast.IfExp):
            return ev(node.body) if np.all(ev(node.test)) else ev(node.orelse)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id not in FUNCTIONS:
                raise QuoteError(f"unknown function {node.func.id}(); allowed: {', '.join(FUNCTIONS)}")
            return FUNCTIONS[node.func.id](*(ev(a) for a in node.args))
        raise QuoteError(f"{path(node)!r} is not allowed in a quoted expression")

    return ev(tree)


def format_number(x, fmt: str) -> str:
    """Python's format spec, plus "sci" (".2sci": 2.3 × 10⁻⁴, two significant digits) and "pow" (".1pow": the exponent of 10, 10^x)."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if fmt.endswith("sci"):
        digits = max(1, int(fmt[1:-3] or 2)) if fmt.startswith(".") else 2  # significant digits
        if x == 0:
            return "0"
        exponent = math.floor(math.log10(abs(x)))
        mantissa = x / 10 ** exponent
        if round(abs(mantissa), digits - 1) >= 10:
            mantissa, exponent = mantissa / 10, exponent + 1
        return f"{mantissa:.{digits - 1}f} × 10{str(exponent).translate(SUPERSCRIPT)}"
    text = format(x, fmt)
    return "0" if re.fullmatch(r"-0(\.0*)?%?", text) and not text.endswith("%") else text


def render_result(value, fmt: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list, np.ndarray)):
        items = [format_number(v, fmt) for v in np.ravel(np.asarray(value, dtype=float))]
        return "–".join(items) if len(items) == 2 and isinstance(value, tuple) else ", ".join(items)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return format_number(value, fmt)
    raise QuoteError(f"the expression gives a {type(value).__name__}, not a number; pick one value from it")


def parse_call(args: str):
    try:
        call = ast.parse(f"f({args})", mode="eval").body
        return [ast.literal_eval(a) for a in call.args]
    except (SyntaxError, ValueError):
        raise QuoteError("the arguments must be quoted strings: (\"topic/experiment\", \"expression\", "
                         "\"format\")") from None


def names_of(record: dict) -> dict:
    """The names an expression sees: the data's keys, `config`, and `data` itself (for keys that are no names)."""
    data = as_value(record.get("data", {}))
    return {**data, "config": as_value(record.get("config", {})), "data": data}


def render(markdown: str, page: str, records) -> str:
    """Expand every value() and check() in `markdown`; records(exp_id) returns that experiment's record."""
    cache = {}

    def expand(match):
        kind, args = match.group(1), match.group(2)
        line = markdown.count("\n", 0, match.start()) + 1
        try:
            parts = parse_call(args)
            if not 2 <= len(parts) <= 3 or not all(isinstance(p, str) for p in parts):
                raise QuoteError(f"{kind}() takes an experiment id, an expression and "
                                 f"{'a format' if kind == 'value' else 'what the sentence claims'}")
            exp_id, expr = parts[0], parts[1]
            if exp_id not in cache:
                cache[exp_id] = names_of(records(exp_id))
            result = evaluate(expr, cache[exp_id])
            if kind == "value":
                return render_result(result, parts[2] if len(parts) == 3 else "g")
            if not np.all(result):
                claim = parts[2] if len(parts) == 3 else expr
                raise QuoteError(f"the data contradicts the sentence: {claim} ({expr} is false)")
            return ""
        except QuoteError as err:
            sentence = markdown[markdown.rfind("\n", 0, match.start()) + 1:match.start()].strip()[-80:]
            raise QuoteError(f"{page}:{line}: {kind}({args.strip()}): {err}"
                             + (f" — in the sentence ending '…{sentence}'" if sentence else "")) from None

    return TEMPLATE.sub(expand, markdown)


def records_in(*folders):
    """exp_id -> that experiment's record, from the first of `folders` that holds it (figures/, or a scratch
    folder of reruns before it). The id is checked first: it becomes a path."""
    from pathlib import Path

    from vgsite.registry import record_file

    def records(exp_id: str) -> dict:
        if not re.fullmatch(r"[\w-]+/[\w-]+", exp_id):
            raise QuoteError(f"{exp_id!r} is not an experiment id (topic/name; `vgsite list` shows them)")
        paths = [Path(folder) / record_file(exp_id) for folder in folders]
        return read_record(next((p for p in paths if p.exists()), paths[-1]))

    return records


def read_record(path) -> dict:
    """An experiment's JSON under figures/: untrusted, so its shape is checked."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise QuoteError(f"{path} does not exist: run `vgsite figures` (or `make`) first") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise QuoteError(f"{path} is not valid JSON ({err}): delete it and run `vgsite figures` again") from None
    if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
        raise QuoteError(f"{path} is not an experiment record (no 'data' object): delete it and rerun")
    return record


def main(argv=None):
    """`python -m vgsite.quotes docs/PAGE.md ...`: render a page's numbers from figures/, or say what is wrong."""
    import sys
    from pathlib import Path

    from vgsite import FIGURES

    records = records_in(FIGURES)
    status = 0
    for name in (argv if argv is not None else sys.argv[1:]):
        try:
            print(render(Path(name).read_text(), name, records))
        except (QuoteError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
