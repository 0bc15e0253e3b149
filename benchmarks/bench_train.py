"""Time per training epoch of the LeNet digits example: symconv next to the same model in PyTorch.

    python benchmarks/bench_train.py                 # 1 and 2 threads, 3 timed epochs each
    python benchmarks/bench_train.py --epochs 5 --threads 1

Each thread count runs in a fresh process (``OMP_NUM_THREADS`` is read when the kernels are
loaded; ``torch.set_num_threads`` for PyTorch), and in that one process both libraries train the
same network (same initial weights, same batches, float32, SGD with momentum and weight decay)
for the same epochs, alternating. An epoch is a full pass of mini-batch steps (forward, loss,
backward, update) over the training split; after one warm-up epoch (kernel loading, caches) the
best and median epoch times are reported, and the ratio symconv / PyTorch of the medians.
Needs the ``examples`` extra (scikit-learn) and torch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def torch_lenet(torch):
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 16, 3, padding=1), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(16, 32, 3, padding=1), t.ReLU(), t.MaxPool2d(2),
        t.Flatten(), t.Linear(128, 120), t.ReLU(), t.Linear(120, 84), t.ReLU(), t.Linear(84, 10),
    )


def measure(epochs: int, threads: int, batch_size: int) -> dict:
    """Run in a child process: epoch times of both libraries on ``threads`` threads."""
    import numpy as np
    import torch

    from symconv import nn
    from symconv.optim import SGD
    from symconv.train import digits

    torch.set_num_threads(threads)
    split = digits.load_split()
    model = digits.lenet("float32", rng=0)
    twin = torch_lenet(torch)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    options = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
    ours, theirs = SGD(model.parameters(), **options), torch.optim.SGD(twin.parameters(), **options)
    loss, reference = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    x_all, y_all = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)

    def symconv_epoch(plan) -> None:
        for index in plan:
            digits.train_step(model, loss, ours, split.x_train[index], split.y_train[index])

    def torch_epoch(plan) -> None:
        for index in plan:
            theirs.zero_grad()
            value = reference(twin(x_all[index]), y_all[index])
            value.backward()
            theirs.step()

    times: dict[str, list[float]] = {"symconv": [], "pytorch": []}
    rng = np.random.default_rng(1)
    for epoch in range(epochs + 1):
        plan = digits.batches(len(split.y_train), batch_size, rng)
        for name, run in (("symconv", symconv_epoch), ("pytorch", torch_epoch)):
            start = time.perf_counter()
            run(plan)
            if epoch:  # epoch 0 warms up (loads kernels, fills caches)
                times[name].append(time.perf_counter() - start)
    return {"threads": threads, "steps": len(plan), "times": times}


def run_child(epochs: int, threads: int, batch_size: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import bench_train as b; " \
           f"print(json.dumps(b.measure({epochs}, {threads}, {batch_size})))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the {threads}-thread run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict], batch_size: int) -> str:
    import statistics

    lines = [
        f"LeNet-5-style on 8×8 digits, float32, batch {batch_size}, {results[0]['steps']} steps per epoch",
        "",
        "| threads | symconv s/epoch (best / median) | PyTorch s/epoch (best / median) | symconv / PyTorch |",
        "|---:|---:|---:|---:|",
    ]
    for result in results:
        ours, theirs = result["times"]["symconv"], result["times"]["pytorch"]
        mo, mt = statistics.median(ours), statistics.median(theirs)
        lines.append(
            f"| {result['threads']} | {min(ours):.3f} / {mo:.3f} | {min(theirs):.3f} / {mt:.3f} | {mo / mt:.2f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per library (after one warm-up)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    results = [run_child(args.epochs, n, args.batch_size) for n in args.threads]
    print(table(results, args.batch_size))


if __name__ == "__main__":
    main()
