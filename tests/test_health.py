"""vgsite.health: the verdicts on known-broken and known-healthy models, the non-finite finder, the overhead
benchmark, the command line's bad input, and the page's three-line example on a model these tests did not build."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from vgsite import health

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def mlp(depth, width, act, init=None):
    layers = []
    for _ in range(depth - 1):
        linear = nn.Linear(width, width)
        if init == "kaiming":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear, act()]
    return nn.Sequential(*layers, nn.Linear(width, 4))


def train(model, steps=30, lr=0.05, every=5, data=None, optimizer=True):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, model[0].in_features if isinstance(model[0], nn.Linear) else 16, generator=gen)
    y = torch.randint(0, 4, (256,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with health.watch(model, opt if optimizer else None, every=every) as h:
        for step in range(steps):
            xb, yb = data(step) if data else (x[step % 4 * 64:][:64], y[step % 4 * 64:][:64])
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return h


def kinds(h):
    return [v["kind"] for v in h.verdicts()]


def test_healthy_relu_mlp_gets_no_verdict():
    h = train(mlp(12, 32, nn.ReLU, "kaiming"))
    assert kinds(h) == [], h.text()
    assert "no problems found" in h.text()


def test_deep_sigmoid_with_default_init_is_vanishing_and_not_learning():
    h = train(mlp(16, 32, nn.Sigmoid))
    assert "vanishing" in kinds(h) and "not learning" in kinds(h), h.text()
    vanishing = next(v for v in h.verdicts() if v["kind"] == "vanishing")
    assert vanishing["value"] < -4 and "vanishing.md" in vanishing["page"]
    assert vanishing["message"].startswith("vanishing: layer 1 (0: Linear) receives")


def test_the_same_verdicts_come_back_from_the_saved_json(tmp_path):
    h = train(mlp(16, 32, nn.Sigmoid), steps=10)
    h.save(tmp_path / "h.json")
    assert health.report_from_json(tmp_path / "h.json") == h.text()
    record = json.loads((tmp_path / "h.json").read_text())
    assert record["steps"] == [0, 5] and len(record["layers"]) == 16


def test_update_ratio_without_an_optimizer_matches_the_one_with_it():
    torch.manual_seed(1)
    a = mlp(4, 16, nn.Tanh)
    b = mlp(4, 16, nn.Tanh)
    b.load_state_dict(a.state_dict())
    with_opt = train(a, steps=6, every=2).to_dict()["update_ratio"]
    without = train(b, steps=6, every=2, optimizer=False).to_dict()["update_ratio"]
    for name in with_opt:
        assert with_opt[name][:2] == pytest.approx(without[name][:2], rel=1e-6)


def test_exploding_rnn_is_exploding_and_its_nan_is_found():
    from vgsite.rnns import SequenceModel, adding_problem

    model = SequenceModel("rnn", hidden=16)
    model.cell = nn.RNN(2, 16, nonlinearity="relu", batch_first=True)
    with torch.no_grad():
        nn.init.normal_(model.recurrent_weight, std=2.5 / math.sqrt(16))
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with health.watch(model, opt, every=1) as h:
        for _ in range(8):
            x, y = adding_problem(32, 30, gen)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert "exploding" in kinds(h) and "non-finite" in kinds(h), h.text()


class Log(nn.Module):
    def forward(self, x):
        return torch.log(x)


class PixelNorm(nn.Module):
    def forward(self, x):  # eps outside the square root: 0/0 in the backward pass where a pixel is all zero
        return x / (x.pow(2).mean(1, keepdim=True).sqrt() + 1e-8)


def test_nonfinite_finder_names_the_module_of_a_forward_nan():
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), Log(), nn.Linear(8, 3))
    h = train(model, steps=3, every=1, data=lambda s: (torch.randn(16, 8), torch.randint(0, 3, (16,))))
    assert h.nonfinite["module"] == "3" and h.nonfinite["pass"] == "forward" and h.nonfinite["step"] == 0
    assert "first non-finite value: 3 (Log) forward at step 0 (its output)" in h.text()


def test_nonfinite_finder_names_the_step_and_the_data_when_the_input_is_bad():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))

    def data(step):
        x = torch.randn(16, 8)
        if step == 4:
            x[3, 2] = math.inf
        return x, torch.randint(0, 3, (16,))

    h = train(model, steps=6, every=2, data=data)
    assert h.nonfinite["step"] == 4 and h.nonfinite["module"] == "0" and "input" in h.nonfinite["where"]


def test_nonfinite_finder_names_the_module_of_a_backward_nan():
    model = nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.ZeroPad2d(2), nn.Conv2d(1, 4, 3, padding=1, bias=False),
                          PixelNorm(), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 4))
    h = train(model, steps=3, every=1, data=lambda s: (torch.randn(16, 16), torch.randint(0, 4, (16,))))
    assert h.nonfinite == {"step": 0, "module": "3", "pass": "backward", "where": "the gradient it passes back to 2"}
    assert "3 (PixelNorm) backward at step 0 (the gradient it passes back to 2 (Conv2d))" in h.text()


def test_nonfinite_from_the_loss_is_blamed_on_the_loss():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with health.watch(model, opt) as h:
        out = model(torch.randn(4, 8))
        (torch.log(out.softmax(-1) - out.softmax(-1))).mean().backward()
        opt.step()
    assert h.nonfinite["module"] == "the loss" and h.nonfinite["pass"] == "backward"


def test_loss_scale_is_recorded_and_gradients_are_unscaled():
    import copy

    model = mlp(3, 8, nn.Tanh)
    twin = copy.deepcopy(model)
    x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))
    nn.functional.cross_entropy(twin(x), y).backward()  # the true gradient
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with health.watch(model, opt, scaler, every=1) as h:
        scaler.scale(nn.functional.cross_entropy(model(x), y)).backward()
        scaler.step(opt)
        scaler.update()
    record = h.to_dict()
    assert record["loss_scale"] == [1024.0]
    assert record["grad_norm"]["0"][0] == pytest.approx(twin[0].weight.grad.norm().item(), rel=1e-4)


def test_figure_has_labelled_log_heatmaps():
    fig = train(mlp(6, 16, nn.Sigmoid), steps=10, every=2).figure()
    axes = [ax for ax in fig.axes if ax.get_xlabel() == "training step"]
    assert len(axes) == 2 and "input side at the bottom" in axes[0].get_ylabel()
    assert all(m.norm.__class__.__name__ == "LogNorm" for ax in axes for m in ax.collections)


def test_overhead_benchmark_runs():
    from vgsite import bench_health

    result = bench_health.bench(depth=20, width=16, batch=8, steps=3, everies=(1, 10), repeats=1)
    assert result["step_seconds"] > 0 and set(result["overhead"]) == {1, 10}


# ---- the command line

MODELS = '''
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    layers = []
    for _ in range(10):
        layers += [nn.Linear(16, 16), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(16, 3)), (torch.randn(32, 16), torch.randint(0, 3, (32,)))

def with_loader():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    data = [(torch.randn(8, 16), torch.randint(0, 3, (8,))) for _ in range(3)]
    return model, nn.CrossEntropyLoss(), data

def wrong():
    return 42

def raises():
    raise RuntimeError("no GPU here")

NOT_A_FUNCTION = 5
'''


def vgsite(*args, cwd):
    return subprocess.run([sys.executable, "-m", "vgsite", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readers")
    (folder / "readers_models.py").write_text(MODELS)
    return folder


def test_cli_prints_the_report(models):
    run = vgsite("health", "readers_models:build", "--steps", "5", cwd=models)
    assert run.returncode == 0, run.stderr
    assert "vanishing: layer 1" in run.stdout
    run = vgsite("health", "readers_models:with_loader", "--steps", "4", "--every", "2", cwd=models)
    assert run.returncode == 0 and "no problems found" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("spec, says", [
    ("no_such_module:build", "cannot import 'no_such_module'"),
    ("readers_models:nothing", "has no function 'nothing'"),
    ("readers_models:wrong", "must return (model, batch) or (model, loss_fn, loader)"),
    ("readers_models:NOT_A_FUNCTION", "not a function"),
    ("readers_models:raises", "raised RuntimeError: no GPU here"),
    ("readers_models", "expected MODULE:FUNCTION"),
])
def test_cli_bad_input_gets_one_line_and_exit_2(models, spec, says, capsys, monkeypatch):
    from vgsite.cli import main

    monkeypatch.chdir(models)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit) as stop:
        main(["health", spec])
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], err
    sys.modules.pop("readers_models", None)


# ---- the page's three-line example, on a model these tests did not build

def test_the_three_line_example_on_the_page_works_on_another_model():
    page = (ROOT / "docs" / "check-your-network.md").read_text()
    example = re.search(r"## Three lines\n\n```python\n(.*?)```", page, re.S).group(1)
    loop = ("for _ in range(12):\n"
            "        loss = nn.functional.mse_loss(model(x), y)\n"
            "        optimizer.zero_grad(); loss.backward(); optimizer.step()\n")
    code = example.replace("...", loop, 1)
    code = re.sub(r"#.*", "", code)
    import os
    import tempfile

    setup = ("import torch\nfrom torch import nn\n"
             "model = nn.Sequential(nn.Conv1d(3, 6, 5), nn.GELU(), nn.Flatten(), nn.Linear(6 * 12, 2))\n"
             "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
             "x, y = torch.randn(20, 3, 16), torch.randn(20, 2)\n")
    with tempfile.TemporaryDirectory() as where:
        old = os.getcwd()
        os.chdir(where)
        try:
            exec(compile(setup + code, "page-example", "exec"), {})
            assert Path("health.png").stat().st_size > 1000
            assert json.loads(Path("health.json").read_text())["steps_seen"] == 12
        finally:
            os.chdir(old)
