"""How much vgsite.health slows a training step: a 20-layer MLP trained with and without the watch, by sampling
interval. Prints a table; not a test (timings depend on the machine). `python -m vgsite.bench_health`."""
import argparse
import time

import torch
from torch import nn

from vgsite import health


def mlp(depth, width, d_in, classes=10):
    layers = []
    for i in range(depth - 1):
        layers += [nn.Linear(d_in if i == 0 else width, width), nn.ReLU()]
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def time_steps(model, opt, x, y, steps, watch_every=None, device="cpu", every_step=True):
    """Seconds per step over `steps` steps (after 5 warm-up steps), with a watch every `watch_every` steps or none.

    On a CPU this is the process's CPU time, not the wall clock: other programs on a busy machine then barely move it.
    """
    clock = time.process_time if device == "cpu" else time.perf_counter
    def one():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def run(n):
        for _ in range(n):
            one()
        if device == "cuda":
            torch.cuda.synchronize()

    if watch_every is None:
        run(5)
        start = clock()
        run(steps)
        return (clock() - start) / steps
    with health.watch(model, opt, every=watch_every, nonfinite_every_step=every_step):
        run(5)
        start = clock()
        run(steps)
        seconds = (clock() - start) / steps
    return seconds


def bench(depth=20, width=256, batch=128, steps=200, everies=(1, 10, 100), repeats=3, device="cpu", threads=1):
    """Per-step time without and with the watch; the overhead is the median over `repeats` interleaved trials."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = mlp(depth, width, width).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, width, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    settings = [(None, True)] + [(k, True) for k in everies] + [(k, False) for k in everies]
    rows = {s: [] for s in settings}
    for _ in range(repeats):  # interleaved, so a busy moment of the machine hits every setting alike
        for k, every_step in settings:
            rows[k, every_step].append(time_steps(model, opt, x, y, steps, k, device, every_step))
    median = lambda v: sorted(v)[len(v) // 2]
    base = median(rows[None, True])
    result = {"depth": depth, "width": width, "batch": batch, "device": device, "threads": threads,
              "step_seconds": base, "overhead": {k: median(rows[k, True]) / base - 1 for k in everies},
              "overhead_sampled_check": {k: median(rows[k, False]) / base - 1 for k in everies}}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print(f"vgsite.health overhead on a {args.depth}-layer ReLU MLP, batch {args.batch}, SGD, {args.device}, "
          f"{args.threads} thread(s); median of {args.repeats} interleaved trials of {args.steps} steps "
          f"({'CPU time' if args.device == 'cpu' else 'wall clock'} per step, and the extra time with the watch)")
    print("the NaN check on every step (the default) | only on the sampled steps (nonfinite_every_step=False)")
    print(f"{'width':>6} {'step (ms)':>10} " + " ".join(f"{'every ' + str(k):>10}" for k in args.every) + " |"
          + " ".join(f"{'every ' + str(k):>10}" for k in args.every))
    results = []
    for width in args.widths:
        r = bench(args.depth, width, args.batch, args.steps, tuple(args.every), args.repeats, args.device,
                  args.threads)
        results.append(r)
        print(f"{width:>6} {r['step_seconds'] * 1e3:>10.2f} "
              + " ".join(f"{r['overhead'][k]:>+10.1%}" for k in args.every) + " |"
              + " ".join(f"{r['overhead_sampled_check'][k]:>+10.1%}" for k in args.every))
    return results


if __name__ == "__main__":
    main()
