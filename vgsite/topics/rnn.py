"""Vanishing through time: a recurrent network is a deep network with one layer per time step, all sharing weights."""
import numpy as np
import torch

from vgsite.plots import figure, finish, log_line, median_band
from vgsite.registry import Plot, Result, experiment
from vgsite.rnns import ADDING_BASELINE, LABELS, SequenceModel, adding_problem, gradient_through_time, train_sequence
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
            log_line(ax, back, ratio, label=label, color=COLOR[net["kind"]])
            data["nets"][label] = {"ratio": ratio, "log10_at_10": np.log10(ratio[10]),
                                   "log10_at_50": np.log10(ratio[50]), "log10_at_99": np.log10(ratio[-1])}
        finish(ax, "distance back in time T − t (steps)", "‖∂L/∂h_t‖ / ‖∂L/∂h_T‖" if ax is axes[0] else "",
               title, loc="lower left")
    return Result(data, [Plot(
        "gradient-through-time", fig,
        alt="Two log-scale panels of the gradient norm at hidden state h_t, relative to the last step, against the "
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
            ax.plot(back, predicted, ls="--", lw=1.2, color="0.15")
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
        ax.plot([], [], ls="--", lw=1.1, color="0.25", label="prediction ρᵏ")
        if kind == "gaussian":
            ax.plot([], [], ls="-.", lw=1.2, color="0.45", label="‖Wᵏ‖₂ for ρ = 1 (largest over directions)")
        finish(ax, "distance back in time k = T − t (steps)", "‖∂L/∂h_t‖ / ‖∂L/∂h_T‖" if ax is axes[0] else "",
               title, legend=False)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
    orth, gauss = data["orthogonal"], data["gaussian"]
    return Result(data, [Plot(
        "linear-rnn", fig,
        alt="Log-scale gradient norm against distance back in time for a linear RNN with spectral radius 0.9, 1.0 "
            f"and 1.1. Left, with W a scaled orthogonal matrix, the measurements lie exactly on the dashed lines "
            f"ρ to the power k: after {cfg.length - 1} steps 10^{orth['0.9']['log10_at_end']:.1f}, 1 and "
            f"10^{orth['1.1']['log10_at_end']:.1f}. Right, with a random Gaussian W rescaled to the same radii, the "
            "curves follow the same slopes only roughly: at one step back they lie above the prediction, by a factor "
            f"{gauss['1.0']['max_over_predicted']:.2f}, later below it. A dash-dotted line, the matrix norm of W to "
            f"the k for radius 1, starts at {data['gaussian_norm_power']['at_1']:.2f} and peaks at "
            f"{data['gaussian_norm_power']['max']:.2f}, above the dashed line at 1.",
        caption=f"h_t = W h_(t−1) + U x_t with {cfg.hidden} units, a linear readout of h_T and the squared error at "
                f"the last step, on {cfg.batch} adding-problem sequences of length {cfg.length}; untrained, seed "
                f"{cfg.seed}. Dashed: ρᵏ. Dash-dotted (right): ‖Wᵏ‖₂ of the Gaussian W with ρ = 1, the most any "
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
                      marker=ends[history["stopped"]], ms=6.5, mec="white", mew=0.6)
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
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8)
    finish(left, "training step", f"training MSE (mean of each {cfg.every} steps)",
           f"Adding problem, length {cfg.length}", **below)
    right.plot([], [], color="0.4", ls=":", lw=1.2, label="same networks untrained (median)")
    finish(right, "distance back in time T − t (steps)", "‖∂L/∂h_t‖ / ‖∂L/∂h_T‖",
           "Gradient through time, after training", **below)
    models = data["models"]
    summary = "; ".join(f"{LABELS[k]} {np.median(models[k]['test_mse']):.3g} (seeds: "
                        f"{', '.join(f'{v:.3g}' for v in models[k]['test_mse'])})" for k in cfg.models)
    return Result(data, [Plot(
        f"adding-{cfg.length}", fig,
        alt=f"Left: training loss on the adding problem with sequences of length {cfg.length}, log scale, one thin "
            f"line per seed ({len(cfg.seeds)} seeds per network), beside the baseline MSE of 1/6 for always "
            f"answering 1. Median final test MSE: {summary}. Right: after training, the gradient norm at h_t "
            "relative to the last step against the distance back in time, median over the seeds with the range "
            "shaded, and the median for the untrained networks, dotted.",
        caption=f"One-layer networks with {cfg.hidden} hidden units, Adam (learning rate "
                f"{', '.join(f'{v:g} for the {LABELS[k]}' for k, v in cfg.lr.items())}), batches of "
                f"{cfg.batch} fresh sequences, at most {cfg.steps} steps; a run stops once its loss is below "
                f"{cfg.solved:.3g} (solved) or has not improved by 5% in {cfg.patience} steps (plateau). Test MSE on "
                f"{cfg.test_size} held-out sequences; seeds {', '.join(map(str, cfg.seeds))}, each its own "
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
