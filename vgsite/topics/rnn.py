"""Vanishing through time: a recurrent network is a deep network with one layer per time step, all sharing weights."""
import math

import numpy as np
import torch

from vgsite.plots import figure, finish, listed, log_line, median_band, power_of_ten
from vgsite.registry import Plot, Result, experiment
from vgsite.rnns import (ADDING_BASELINE, LABELS, SequenceModel, adding_problem, gradient_through_time,
                         train_sequence, train_stacked_sequences)
from vgsite.train import across_seeds

# label: model settings, in two groups: as PyTorch initialises them, and initialised to remember.
AT_INIT = {
    "vanilla RNN (tanh), default init": dict(kind="rnn"),
    "LSTM, default init (forget bias 0)": dict(kind="lstm"),
    "GRU, default init (update bias 0)": dict(kind="gru"),
}
TO_REMEMBER = {
    "vanilla RNN (tanh), orthogonal W_hh": dict(kind="rnn", orthogonal=True),
    "LSTM, forget-gate bias 3": dict(kind="lstm", gate_bias=3.0),
    "GRU, update-gate bias 3": dict(kind="gru", gate_bias=3.0),
}
COLOR = {"rnn": "#0072B2", "lstm": "#D55E00", "gru": "#009E73"}
GRAD_RATIO = r"$\|\partial L/\partial h_t\| \;/\; \|\partial L/\partial h_T\|$"


def legend_label(label):
    """A data key as a legend shows it: matrices in mathtext."""
    return label.replace("W_hh", "$W_{hh}$")


def profile(net, length, hidden, batch, seeds, data_seed=1):
    """||dL/dh_{T-k}|| / ||dL/dh_T|| for k = 0..T-1, geometric mean over seeds (one random init each)."""
    x, y = adding_problem(batch, length, torch.Generator().manual_seed(data_seed))
    logs = []
    for seed in seeds:
        torch.manual_seed(seed)
        signal = np.array(gradient_through_time(SequenceModel(hidden=hidden, **net), x, y))[::-1]
        logs.append(np.log10(signal / signal[0]))
    return 10 ** np.mean(logs, axis=0)


@experiment(length=100, hidden=32, batch=64, seeds=(0, 1, 2))
def gradient_through_time_at_init(cfg):
    fig, axes = figure(ncols=2, height=3.9, sharey=True)
    back = np.arange(cfg.length)
    data = {"distance": back, "nets": {}}
    for ax, group, title in ((axes[0], AT_INIT, "As PyTorch initialises them"),
                             (axes[1], TO_REMEMBER, "Initialised to remember")):
        for label, net in group.items():
            ratio = profile(net, cfg.length, cfg.hidden, cfg.batch, cfg.seeds)
            log_line(ax, back, ratio, label=legend_label(label), color=COLOR[net["kind"]])
            data["nets"][label] = {"ratio": ratio, "log10_at_10": np.log10(ratio[10]),
                                   "log10_at_50": np.log10(ratio[50]), "log10_at_99": np.log10(ratio[-1])}
        finish(ax, "distance back in time T − t (steps)", GRAD_RATIO if ax is axes[0] else "", title,
               loc="upper right" if ax is axes[0] else "lower left")
    return Result(data, [Plot(
        "gradient-through-time", fig,
        alt="Two log-scale panels of the gradient norm at hidden state hₜ, relative to the last step, against the "
            f"distance back in time up to {cfg.length - 1} steps, at initialisation. Left, with PyTorch's default "
            "initialisation, the vanilla RNN, the LSTM and the GRU all fall in a straight line, by about "
            f"{-data['nets']['vanilla RNN (tanh), default init']['log10_at_50']:.0f}, "
            f"{-data['nets']['LSTM, default init (forget bias 0)']['log10_at_50']:.0f} and "
            f"{-data['nets']['GRU, default init (update bias 0)']['log10_at_50']:.0f} decades over 50 steps. "
            "Right, with an orthogonal recurrent matrix for the vanilla RNN and a gate bias of 3 for the LSTM and "
            "the GRU, all three lose far less, and the gated ones stay within about two decades over 100 steps.",
        caption=f"One-layer networks with {cfg.hidden} hidden units on a batch of {cfg.batch} adding-problem "
                f"sequences of length {cfg.length}, loss on the last step only, untrained; geometric mean over "
                f"{len(cfg.seeds)} initialisations.")])


@experiment(length=100, hidden=32, batch=64, radii=(0.9, 1.0, 1.1), seed=0)
def linear_rnn(cfg):
    fig, axes = figure(ncols=2, height=4.5, sharey=True)
    back = np.arange(cfg.length)
    x, y = adding_problem(cfg.batch, cfg.length, torch.Generator().manual_seed(1))
    data = {"distance": back, "orthogonal": {}, "gaussian": {}}
    for ax, kind, title in ((axes[0], "orthogonal", "W = ρ · orthogonal: exactly ρᵏ"),
                            (axes[1], "gaussian", "W = random Gaussian, spectral radius ρ")):
        for i, rho in enumerate(cfg.radii):
            torch.manual_seed(cfg.seed)
            model = SequenceModel("linear", hidden=cfg.hidden)
            with torch.no_grad():
                w = model.cell.weight_hh
                if kind == "gaussian":
                    torch.nn.init.normal_(w)
                    w /= torch.linalg.eigvals(w).abs().max()
                w *= rho
            signal = np.array(gradient_through_time(model, x, y))[::-1]
            measured = signal / signal[0]
            predicted = rho ** back.astype(float)
            color = ("#0072B2", "#009E73", "#D55E00")[i % 3]
            log_line(ax, back, measured, label=f"ρ = {rho}, measured", color=color, marker="o", ms=3.5,
                     markevery=5, lw=1.0)
            ax.plot(back, predicted, ls="--", lw=1.2, color=color)
            over = measured / predicted
            data[kind][str(rho)] = {"measured": measured, "predicted": predicted,
                                    "max_rel_error": np.max(np.abs(over - 1)),
                                    "max_over_predicted": over.max(), "k_at_max_over": int(over.argmax()),
                                    "min_over_predicted": over.min(),
                                    "log10_at_end": np.log10(measured[-1]),
                                    "log10_predicted_at_end": np.log10(predicted[-1])}
            if kind == "gaussian" and rho == 1.0:
                # ||W^k||_2 (float64), the largest growth over all directions: for a non-normal W it exceeds rho^k,
                # and only its k-th root tends to rho (Gelfand's formula).
                w64, power = w.detach().double(), torch.eye(cfg.hidden, dtype=torch.float64)
                norms = [1.0]
                for _ in range(1, cfg.length):
                    power = power @ w64
                    norms.append(torch.linalg.matrix_norm(power, ord=2).item())
                norms = np.array(norms)
                ax.plot(back, norms, color="0.45", lw=1.2, ls="-.")
                data["gaussian_norm_power"] = {
                    "norm": norms, "max": norms.max(), "k_at_max": int(norms.argmax()), "at_1": norms[1],
                    "kth_root_at_end": norms[-1] ** (1 / (cfg.length - 1)),
                    "kth_root_at_10": norms[10] ** (1 / 10)}
        ax.plot([], [], ls="--", lw=1.2, color="0.45", label="theory: ρᵏ (dashed, in each colour)")
        if kind == "gaussian":
            ax.plot([], [], ls="-.", lw=1.2, color="0.45", label="‖Wᵏ‖₂ for ρ = 1 (largest over directions)")
        finish(ax, "distance back in time k = T − t (steps)", GRAD_RATIO if ax is axes[0] else "", title,
               legend=False)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    orth, gauss = data["orthogonal"], data["gaussian"]
    return Result(data, [Plot(
        "linear-rnn", fig,
        alt="Log-scale gradient norm against distance back in time for a linear RNN with spectral radius 0.9, 1.0 "
            f"and 1.1. Left, with W a scaled orthogonal matrix, the measurements lie exactly on the dashed lines "
            f"ρ to the power k: after {cfg.length - 1} steps {power_of_ten(orth['0.9']['log10_at_end'])}, 1 and "
            f"{power_of_ten(orth['1.1']['log10_at_end'])}. Right, with a random Gaussian W rescaled to the same "
            "radii, the curves follow the same slopes only roughly: at one step back they lie above the prediction, "
            "by a factor "
            f"{gauss['1.0']['max_over_predicted']:.2f}, later below it. A dash-dotted line, the matrix norm of W to "
            f"the k for radius 1, starts at {data['gaussian_norm_power']['at_1']:.2f} and peaks at "
            f"{data['gaussian_norm_power']['max']:.2f}, above the dashed line at 1.",
        caption=f"hₜ = W hₜ₋₁ + U xₜ with {cfg.hidden} units, a linear readout of the last state and the squared error "
                f"at "
                f"the last step, on {cfg.batch} adding-problem sequences of length {cfg.length}; untrained, seed "
                f"{cfg.seed}. Dashed: ρᵏ, in the colour of its ρ. Dash-dotted (right): ‖Wᵏ‖₂ of the Gaussian W with "
                "ρ = 1, the most any "
                "gradient can grow in k steps.")])


def adding(cfg):
    """Train the three recurrent networks on the adding problem at one length, once per seed; learning curves and,
    after training, the gradient through time (median and range over the seeds)."""
    test = adding_problem(cfg.test_size, cfg.length, torch.Generator().manual_seed(10_000 + cfg.length))
    batch = lambda gen: adding_problem(cfg.batch, cfg.length, gen)
    fig, (left, right) = figure(ncols=2, height=4.8)
    data = {"length": cfg.length, "baseline": ADDING_BASELINE, "seeds": cfg.seeds, "models": {}}
    back = np.arange(cfg.length)
    ends = {"solved": "o", "plateau": "X", "steps": "s"}
    for kind in cfg.models:
        runs = []
        for seed in cfg.seeds:
            torch.manual_seed(seed)
            model = SequenceModel(kind, hidden=cfg.hidden)
            before = np.array(gradient_through_time(model, *test))[::-1]
            history = train_sequence(model, batch, cfg.steps, lr=cfg.lr[kind], every=cfg.every, seed=seed,
                                     solved=cfg.solved, patience=cfg.patience, test=test)
            after = np.array(gradient_through_time(model, *test))[::-1]
            runs.append((history, before / before[0], after / after[0]))
        label = LABELS[kind]
        test_mse = np.array([h["test_mse"] for h, _, _ in runs])
        for i, (history, _, _) in enumerate(runs):
            left.plot(history["step"], history["loss"], color=COLOR[kind], lw=1.0, alpha=0.85,
                      label=f"{label}: test MSE {np.median(test_mse):.2g} ({test_mse.min():.2g}–{test_mse.max():.2g})"
                      if i == 0 else None)
            left.plot(history["step"][-1], history["loss"][-1], color=COLOR[kind], ls="none",
                      marker=ends[history["stopped"]], ms=6.5)
        before = np.array([b for _, b, _ in runs])
        after = np.array([a for _, _, a in runs])
        median_band(right, back, after, label=f"{label}, trained", log=True, color=COLOR[kind])
        right.plot(back, np.median(before, axis=0), color=COLOR[kind], ls=":", lw=1.2)
        log_after, log_before = np.log10(after[:, -1]), np.log10(before[:, -1])
        data["models"][kind] = {
            "test_mse": test_mse, "test_mse_summary": across_seeds(test_mse),
            "steps_run": [h["steps_run"] for h, _, _ in runs],
            "stopped": [h["stopped"] for h, _, _ in runs],
            "solved": [h["stopped"] == "solved" for h, _, _ in runs],
            "log10_after_at_end": log_after, "log10_before_at_end": log_before,
            "log10_after_at_end_summary": across_seeds(log_after),
            "ratio_before_median": np.median(before, axis=0), "ratio_after": across_seeds(after),
            "histories": [{k: h[k] for k in ("step", "loss", "grad_norm")} for h, _, _ in runs]}
    left.axhline(ADDING_BASELINE, color="0.3", ls="--", lw=1.1, label="always answer 1: MSE 1/6")
    for stop, marker in ends.items():
        left.plot([], [], color="0.35", ls="none", marker=marker, ms=6,
                  label={"solved": "solved", "plateau": "stopped on a plateau", "steps": "step limit"}[stop])
    left.set_yscale("log")
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.16))
    finish(left, "training step", f"training MSE (mean of each {cfg.every} steps)",
           f"Adding problem, length {cfg.length}", **below)
    right.plot([], [], color="0.4", ls=":", lw=1.2, label="same networks untrained (median)")
    finish(right, "distance back in time T − t (steps)", GRAD_RATIO,
           "Gradient through time, after training", **below)
    models = data["models"]
    summary = "; ".join(f"{LABELS[k]} {np.median(models[k]['test_mse']):.3g} (seeds: "
                        f"{', '.join(f'{v:.3g}' for v in models[k]['test_mse'])})" for k in cfg.models)
    return Result(data, [Plot(
        f"adding-{cfg.length}", fig,
        alt=f"Left: training loss on the adding problem with sequences of length {cfg.length}, log scale, one thin "
            f"line per seed ({len(cfg.seeds)} seeds per network), beside the baseline MSE of 1/6 for always "
            f"answering 1. Median final test MSE: {summary}. Right: after training, the gradient norm at hₜ "
            "relative to the last step against the distance back in time, median over the seeds with the range "
            "shaded, and the median for the untrained networks, dotted.",
        caption=f"One-layer networks with {cfg.hidden} hidden units, Adam (learning rate "
                f"{', '.join(f'{v:g} for the {LABELS[k]}' for k, v in cfg.lr.items())}), batches of "
                f"{cfg.batch} fresh sequences, at most {cfg.steps} steps; a run stops once its loss is below "
                f"{cfg.solved:.3g} (solved) or has not improved by 5% in {cfg.patience} steps (plateau). Test MSE on "
                f"{cfg.test_size} held-out sequences; seeds {listed(cfg.seeds)}, each its own "
                "initialisation and batches. Left: one line per seed; its end marker says why it stopped. Right: "
                "median line, min–max band.")])


# The vanilla RNN got further with a smaller learning rate than the gated networks in our trials, so it gets its own.
ADDING = dict(models=("rnn", "lstm", "gru"), hidden=32, batch=64, lr=dict(rnn=1e-3, lstm=1e-2, gru=1e-2),
              steps=2000, every=50,
              solved=ADDING_BASELINE / 20, patience=1000, test_size=1000, seeds=(0, 1, 2))


@experiment(length=20, **ADDING)
def adding_20(cfg):
    return adding(cfg)


@experiment(length=50, **ADDING)
def adding_50(cfg):
    return adding(cfg)


@experiment(length=100, **ADDING)
def adding_100(cfg):
    return adding(cfg)


# ---- Recurrent initialisation ----------------------------------------------------------------------------------------
# The initialisations compared on the adding problem, label: init (vgsite.rnns.recurrent_layer); colours, legends.
LSTM_INITS = {"forget bias 0": "forget-0", "forget bias 1": "forget-1", "chrono": "chrono"}
RNN_INITS = {"tanh, default": "default", "tanh, orthogonal": "orthogonal", "IRNN": "identity"}
INIT_COLOR = {"GRU": "#009E73", "forget bias 0": "#D55E00", "forget bias 1": "#E69F00", "chrono": "#CC79A7",
              "tanh, default": "#0072B2", "tanh, orthogonal": "#56B4E9", "IRNN": "#CC79A7"}
INIT_LEGEND = {"GRU": "GRU, PyTorch's init", "forget bias 0": "LSTM, forget-gate bias 0",
               "forget bias 1": "LSTM, forget-gate bias 1", "chrono": "LSTM, chrono init",
               "tanh, default": "tanh RNN, PyTorch's init",
               "tanh, orthogonal": "tanh RNN, orthogonal $W_{hh}$", "IRNN": "IRNN (ReLU, $W_{hh} = I$)"}

INIT_WORDS = {k: v.replace("$W_{hh}$", "Wₕₕ").replace("$W_{hh} = I$", "Wₕₕ = I") for k, v in INIT_LEGEND.items()}  # alt text


def first_below(steps, loss, threshold):
    """The first recorded step whose value (a mean training loss) is below threshold, nan if none."""
    below = np.flatnonzero(np.asarray(loss) < threshold)
    return float(steps[below[0]]) if below.size else math.nan


OPEN = 2  # decades: a path back in time counts as open once the first input is within this of the last


def train_inits(cfg, kind, inits, length, steps, lr, probe_every):
    """Train every (initialisation, seed) of one kind together; per initialisation the per-seed numbers."""
    test = adding_problem(cfg.test_size, length, torch.Generator().manual_seed(10_000 + length))
    probe = adding_problem(cfg.probe_size, length, torch.Generator().manual_seed(20_000 + length))[0]
    out = train_stacked_sequences(kind, [inits[k] for k in inits], list(cfg.seeds), length, steps,
                                  hidden=cfg.hidden, batch=cfg.batch, lr=lr, clip=cfg.clip, every=cfg.every,
                                  probe=probe, probe_every=probe_every, test=test)
    n, runs = len(cfg.seeds), {}
    marked = (probe[:, :, 1] > 0).any(0).numpy()  # the steps where some probe sequence carries a marker
    probe_step = np.array(out["probe_step"])
    for i, label in enumerate(inits):
        rows = slice(i * n, (i + 1) * n)
        loss, conn = out["loss"][rows], out["connectivity"][rows]  # (seeds, records), (seeds, probes, T)
        at = np.array([first_below(out["step"], row, cfg.solved) for row in loss])
        test_mse = out["test_mse"][rows]
        runs[label] = {
            "test_mse": test_mse, "test_mse_summary": across_seeds(test_mse),
            "solved": test_mse < cfg.solved, "n_solved": int((test_mse < cfg.solved).sum()),
            "solved_at": at, "loss": loss, "loss_summary": across_seeds(loss),
            # ||dh_T/dx_t|| (t = 1..T): per seed at initialisation and trained; log10 of it per probe, median over
            # the seeds (rounded to 0.001 decades); the first input relative to the last, per seed
            "connectivity_at_init": conn[:, 0], "connectivity_trained": conn[:, -1],
            "log10_connectivity_median": np.round(np.median(np.log10(conn), axis=0), 3),
            "log10_first_over_last": np.log10(conn[:, :, 0] / conn[:, :, -1]),
            "log10_first_over_last_at_init": np.log10(conn[:, 0, 0] / conn[:, 0, -1]),
            "log10_first_over_last_trained": np.log10(conn[:, -1, 0] / conn[:, -1, -1]),
            # the first probe at which the first input is within OPEN decades of the last (nan: never)
            "opened_at": np.array([first_below(probe_step, -row, OPEN) for row in np.log10(conn[:, :, 0] /
                                                                                       conn[:, :, -1])]),
            # trained: mean log10 connectivity at the marked steps minus at the others
            "log10_marked_over_unmarked_trained": np.log10(conn[:, -1, marked]).mean(1) -
                                                  np.log10(conn[:, -1, ~marked]).mean(1)}
    return {"step": np.array(out["step"]), "probe_step": probe_step, "open_decades": OPEN,
            "n_marked_steps": int(marked.sum()), "runs": runs}


def draw_inits(cfg, result, labels, length, title):
    """Left: training loss, median over seeds with the range; right: ||dh_T/dx_t|| relative to the last input,
    against the distance back in time, at initialisation (dotted) and trained (solid), medians over seeds."""
    fig, (left, right) = figure(ncols=2, height=4.6)
    back = np.arange(length)  # T - t
    for label in labels:
        run, color = result["runs"][label], INIT_COLOR[label]
        median_band(left, result["step"], run["loss"], label=f"{INIT_LEGEND[label]}: test MSE "
                    f"{np.median(run['test_mse']):.2g}, {run['n_solved']} of {len(cfg.seeds)} solved", log=True,
                    color=color)
        for conn, kw in ((run["connectivity_at_init"], dict(ls=":", lw=1.4)),
                         (run["connectivity_trained"], dict(label=INIT_LEGEND[label]))):
            rel = conn / conn[:, -1:]  # (seeds, T), 1 at t = T
            log_line(right, back, np.median(rel[:, ::-1], axis=0), color=color, **kw)
    left.axhline(ADDING_BASELINE, color="0.4", ls="--", lw=1.1, label="always answer 1: MSE 1/6")
    left.axhline(cfg.solved, color="0.4", ls=":", lw=1.1, label="solved: MSE 1/120")
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.17))
    finish(left, "training step", f"training MSE (mean of {cfg.every} steps)", title, **below)
    right.plot([], [], color="0.4", ls=":", lw=1.4, label="same networks at initialisation")
    finish(right, "distance back in time T − t (steps)", r"$\|\partial h_T/\partial x_t\| \;/\; "
           r"\|\partial h_T/\partial x_T\|$", "Input connectivity, trained", **below)
    return fig


INIT = dict(hidden=24, batch=32, clip=1.0, every=25, solved=ADDING_BASELINE / 20, test_size=1000, probe_size=8)


@experiment(length=40, steps=500, lr=dict(lstm=1e-2, gru=1e-2, rnn=3e-3), probe_every=25, seeds=(0, 1, 2),
            **INIT)
def init_40(cfg):
    """The LSTM's gate-bias initialisations, and the input connectivity of the three networks during training."""
    nets = {"lstm": LSTM_INITS, "gru": {"GRU": "default"}, "rnn": {"tanh, default": "default"}}
    data = {"length": cfg.length, "baseline": ADDING_BASELINE, "seeds": cfg.seeds}
    for kind, inits in nets.items():
        data[kind] = train_inits(cfg, kind, inits, cfg.length, cfg.steps, cfg.lr[kind], cfg.probe_every)
    fig = draw_inits(cfg, data["lstm"], LSTM_INITS, cfg.length, f"LSTM, adding problem, length {cfg.length}")
    runs = data["lstm"]["runs"]
    summary = "; ".join(f"{INIT_WORDS[k]}: {runs[k]['n_solved']} of {len(cfg.seeds)} seeds solved, test MSE "
                        f"{np.median(runs[k]['test_mse']):.3g} (median)" for k in LSTM_INITS)
    plots = [Plot(
        "lstm-init", fig,
        alt=f"Left: training loss of an LSTM on the adding problem of length {cfg.length} with three "
            f"initialisations of its gate biases, log scale, median over {len(cfg.seeds)} seeds with the range "
            f"shaded. {summary}. Right: how strongly the last hidden state depends on each input, relative to the "
            "last input, against the distance back in time, at initialisation (dotted) and after training (solid).",
        caption=f"One-layer LSTMs with {cfg.hidden} hidden units, Adam (learning rate {cfg.lr['lstm']:g}), gradient "
                f"norm clipped at {cfg.clip:g} per network, {cfg.steps} steps on batches of {cfg.batch} fresh "
                f"sequences of length {cfg.length}; the networks of one seed share their weight draw and their "
                "batches, only the gate biases differ. Forget-gate bias 0 or 1: that bias set, all others as "
                "PyTorch draws them. Chrono (Tallec & Ollivier 2018): forget-gate biases log u with u uniform on "
                f"[1, {cfg.length - 1}], input-gate biases their negatives. Solved: test MSE on {cfg.test_size} "
                "held-out sequences below 1/120. Right: the norm of the Jacobian of the last hidden state with "
                f"respect to the input at step t (Frobenius norm, root mean square over {cfg.probe_size} sequences), "
                "divided by its "
                "value at the last step; medians over the seeds "
                f"{listed(cfg.seeds)}.")]
    plots.append(draw_connectivity(cfg, data))
    return Result(data, plots)


CONNECTIVITY = (("rnn", "tanh, default", "tanh RNN, PyTorch's init"), ("gru", "GRU", "GRU, PyTorch's init"),
                ("lstm", "forget bias 0", "LSTM, forget-gate bias 0"), ("lstm", "chrono", "LSTM, chrono init"))


def draw_connectivity(cfg, data):
    """Heatmaps of log10 ||dh_T/dx_t|| over (input step t, training step), median over the seeds."""
    fig, axes = figure(ncols=2, nrows=2, height=5.8, sharex=True, sharey=True)
    t_edges = np.arange(cfg.length + 1) + 0.5
    maps = {}
    for kind, label, _ in CONNECTIVITY:
        probe_step = data[kind]["probe_step"]
        maps[label] = data[kind]["runs"][label]["log10_connectivity_median"]  # (probes, T)
    top = max(m.max() for m in maps.values())
    high, low = math.ceil(top), math.ceil(top) - 8
    step_edges = np.concatenate([[probe_step[0] - cfg.probe_every / 2], probe_step + cfg.probe_every / 2])
    for ax, (kind, label, title) in zip(axes, CONNECTIVITY):
        mesh = ax.pcolormesh(t_edges, step_edges, maps[label], vmin=low, vmax=high, cmap="viridis",
                             shading="flat", rasterized=True)
        ax.set_title(title)
        ax.grid(False)
    for ax in axes[2:]:
        ax.set_xlabel("input step t")
    for ax in axes[::2]:
        ax.set_ylabel("training step")
    bar = fig.colorbar(mesh, ax=list(axes), extend="min", shrink=0.9)
    bar.set_label(r"$\log_{10}\,\|\partial h_T/\partial x_t\|$ (median over seeds)")
    data["connectivity_scale"] = {"low": low, "high": high}
    rel = {label: data[kind]["runs"][label] for kind, label, _ in CONNECTIVITY}
    words = "; ".join(f"{title}: first input {np.median(rel[label]['log10_first_over_last_at_init']):.1f} decades "
                      f"below the last at step 0, {np.median(rel[label]['log10_first_over_last_trained']):.1f} after "
                      f"{cfg.steps} steps" for _, label, title in CONNECTIVITY)
    return Plot(
        "connectivity", fig,
        alt=f"Four heatmaps of how strongly the last hidden state depends on the input at each step t (horizontal, "
            f"1 to {cfg.length}) as training proceeds (vertical, step 0 to {cfg.steps}), log colour scale from "
            f"{power_of_ten(low)} to {power_of_ten(high)}, median over {len(cfg.seeds)} seeds. {words}.",
        caption=f"The Frobenius norm of the Jacobian of the last hidden state with respect to the input at step t,"
                f" root mean square over {cfg.probe_size} fixed adding-problem sequences of length "
                f"{cfg.length}, measured every {cfg.probe_every} training steps of the runs of the experiment "
                f"above (tanh RNN: learning rate {cfg.lr['rnn']:g}; GRU: {cfg.lr['gru']:g}); median of the log over "
                f"the seeds {listed(cfg.seeds)}. Colours below {power_of_ten(low)} are drawn as "
                f"{power_of_ten(low)}.")


@experiment(length=20, steps=1000, lr=3e-3, seeds=(0, 1, 2, 3, 4), **INIT)
def init_20(cfg):
    """The vanilla RNN's recurrent matrix: PyTorch's default, orthogonal (tanh), identity (ReLU, the IRNN)."""
    data = {"length": cfg.length, "baseline": ADDING_BASELINE, "seeds": cfg.seeds}
    data["rnn"] = train_inits(cfg, "rnn", RNN_INITS, cfg.length, cfg.steps, cfg.lr, cfg.steps)
    fig = draw_inits(cfg, data["rnn"], RNN_INITS, cfg.length, f"Vanilla RNN, adding problem, length {cfg.length}")
    runs = data["rnn"]["runs"]
    summary = "; ".join(f"{INIT_WORDS[k]}: test MSE {np.median(runs[k]['test_mse']):.3g} (median; seeds "
                        f"{', '.join(f'{v:.3g}' for v in runs[k]['test_mse'])})" for k in RNN_INITS)
    return Result(data, [Plot(
        "vanilla-init", fig,
        alt=f"Left: training loss of a vanilla RNN on the adding problem of length {cfg.length} with three "
            f"initialisations of its recurrent matrix, log scale, median over {len(cfg.seeds)} seeds with the range "
            f"shaded. {summary}. Right: how strongly the last hidden state depends on each input, relative to the "
            "last input, against the distance back in time, at initialisation (dotted) and after training (solid).",
        caption=f"One-layer RNNs with {cfg.hidden} hidden units, Adam (learning rate {cfg.lr:g}), gradient norm "
                f"clipped at {cfg.clip:g} per network, {cfg.steps} steps on batches of {cfg.batch} fresh sequences "
                f"of length {cfg.length}; the networks of one seed share their weight draw and their batches. "
                "PyTorch's init: tanh units, every weight from U(−1/√n, 1/√n). Orthogonal: the same with a random "
                "orthogonal recurrent matrix (Saxe et al. 2014). IRNN (Le et al. 2015): ReLU units, recurrent "
                "matrix the identity, biases 0, input weights from N(0, 10⁻⁶). Solved: test MSE on "
                f"{cfg.test_size} held-out sequences below 1/120. Right: the norm of the Jacobian of the last hidden "
                "state with respect to the input at step t, divided by its value at the last step; "
                f"medians over the seeds {listed(cfg.seeds)}.")])
