"""Where the time goes (not a pipeline stage): `python -m commands profile {epoch,sparse-linear,latency-floor,serving}`.

`epoch` runs `--steps` training steps of the dense model and of the distilled student (with the teacher's forward pass)
exactly as the stages do, under torch.profiler, groups the ops (conv, linear, batch norm, pooling, optimizer,
augmentation, ...), and scales them to one epoch of params.yaml's training set. The per-epoch test pass is timed
on its own. `--compile` trains through torch.compile instead (forward and backward as Inductor's fused kernels;
the stages never do): what fusing the elementwise ops would buy. Prints a table per model; needs the MNIST
files (`dvc repro download`). The teacher is a freshly built dense model: its weights do not change its speed.

`sparse-linear` times each FC layer of params.yaml's model instead, masked to several densities: the dense
masked product (what torch's pruning hook computes) against sparse.SparseLinear (kept weights only, CSR), the
measurement behind sparse.MAX_DENSITY, and against GatherLinear (kept weights only, gather and index-add).

`latency-floor` times one image through params.yaml's architecture with every hidden layer cut to a fraction
of its channels (fresh weights: they do not change the speed), the way evaluate times a model: how far
removing channels can lower batch-1 latency in eager PyTorch, where each op has a fixed cost.

`serving` times the pipeline's dense and channel models at batch 1 eager, as TorchScript (trace + freeze)
and through torch.compile, interleaved: what the per-op cost of eager mode hides.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune
from torch.profiler import ProfilerActivity, profile

from bignn import paths
from bignn.config import Params, load_params
from bignn.data import Split, augment, load_split
from bignn.forms import load_model
from bignn.metrics import median_seconds
from bignn.model import build_model, model_args_from
from bignn.pruning import sparse
from bignn.runtime import cli, seeded, setup
from bignn.training import MEMORY_FORMAT, as_input, predict, prepare

# Profiler op names (forward and backward) to the part of the step they belong to; first match wins.
GROUPS = (
    # Under --compile: Inductor's generated C++ for everything it fused (the matrix products stay aten ops).
    ("compiled (Inductor's fused kernels)", ("compiledfxgraph",)),
    ("augmentation", ("affine_grid", "grid_sampler", "aten::cos", "aten::sin", "aten::bmm")),
    ("optimizer", ("adam", "zero_grad", "lr_scheduler")),
    ("conv", ("conv",)),
    # Under kernels: portable the products run as oneDNN's linear (bignn/matmul.py): mkldnn::_linear_pointwise.
    ("linear", ("addmm", "aten::mm", "aten::linear", "linear_pointwise", "sparse")),
    ("batch norm", ("batch_norm",)),
    ("max pool", ("max_pool",)),
    ("relu", ("relu", "threshold", "clamp_min")),
    ("dropout", ("dropout", "bernoulli")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss", "kl_div", "softmax")),
    ("memory fill and copies", ("fill_", "copy_", "zero_", "empty", "clone", "contiguous")),
)


def _group(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other (elementwise, indexing, Python)"


SPARSE_DENSITIES = (0.01, 0.05, 0.1, 0.15, 0.2, 0.3)

FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def _step_fn(model: nn.Module, train: Split, params: Params, batch_size: int, gen: torch.Generator,
             memory_format: torch.memory_format, compiled: bool = False) -> Callable[[], torch.Tensor]:
    """One training step as fit() takes it (through torch.compile if `compiled`); returns the augmented batch
    it trained on."""
    t = params.train
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    forward = torch.compile(model, dynamic=False) if compiled else model

    def step() -> torch.Tensor:
        idx = torch.randint(len(train), (batch_size,), generator=gen)
        x = as_input(augment(train.images[idx], t.max_shift, t.max_rotate, gen, t.max_scale), memory_format)
        loss = F.cross_entropy(forward(x), train.labels[idx], label_smoothing=t.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return x

    return step


def profile_training(model: nn.Module, train: Split, test: Split, params: Params, batch_size: int, steps: int,
                     teacher: nn.Module | None = None, fill_uninitialized: bool = False,
                     memory_format: torch.memory_format = MEMORY_FORMAT, compiled: bool = False) -> dict[str, float]:
    """Seconds per epoch of training set, by part of the step; the teacher's forward and the test pass apart.
    With `compiled` the warm-up steps also compile (not timed)."""
    setup(params.threads, params.kernels)
    gen = seeded(params.seed)
    torch.utils.deterministic.fill_uninitialized_memory = fill_uninitialized
    step = _step_fn(prepare(model, memory_format).train(), train, params, batch_size, gen, memory_format, compiled)
    for _ in range(3):  # warm-up: kernel choice, allocator, compilation
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        batches = [step() for _ in range(steps)]
        wall = time.perf_counter() - t0
    scale = (len(train) / batch_size) / steps
    parts: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():  # self time: nested ops are not counted twice
        parts[_group(ev.key)] += ev.self_cpu_time_total / 1e6 * scale
    out = dict(parts)
    out["= training step, wall (under the profiler)"] = wall * scale
    if teacher is not None:
        prepare(teacher, memory_format).eval()
        with torch.no_grad():
            t0 = time.perf_counter()
            for x in batches:
                teacher(x)
            out["teacher forward (distilled student only)"] = (time.perf_counter() - t0) * scale
    t0 = time.perf_counter()
    predict(model, test, memory_format=memory_format)
    out["test pass (once per epoch)"] = time.perf_counter() - t0
    return out


class GatherLinear(nn.Module):
    """A masked linear layer on its kept weights only, from ATen ops that add in a fixed order (gather the inputs
    each kept weight reads, multiply, index-add into the outputs): the kind of product `kernels: portable` could
    train a 99%-sparse layer with, where the CSR products are MKL's. Timed here, not used by the stages."""

    def __init__(self, layer: nn.Linear) -> None:
        """`layer` pruned with torch.nn.utils.prune: its mask says which weights are kept."""
        super().__init__()
        rows, cols = torch.nonzero(layer.weight_mask, as_tuple=True)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)
        self.values = nn.Parameter(layer.weight.detach()[rows, cols].clone())
        self.bias = nn.Parameter(layer.bias.detach().clone())
        self.out_features = layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Features-major (in, batch): each kept weight gathers and adds one contiguous row of `batch` floats.
        picked = x.t().contiguous().index_select(0, self.cols) * self.values[:, None]
        out = self.bias[:, None].expand(self.out_features, len(x)).clone()
        return out.index_add_(0, self.rows, picked).t()


def sparse_linear_timings(in_features: int, out_features: int, batch_size: int, densities: Sequence[float],
                          reps: int = 20) -> list[dict[str, float]]:
    """Milliseconds of one forward + backward of a magnitude-masked linear layer: dense (torch's pruning hook
    and F.linear), wrapped in sparse.SparseLinear (CSR) and as a GatherLinear, at each fraction of weights kept."""
    rows = []
    for density in densities:
        torch.manual_seed(0)
        layer = nn.Linear(in_features, out_features)
        prune.l1_unstructured(layer, "weight", amount=1 - density)
        x = torch.randn(batch_size, in_features, requires_grad=True)
        model = nn.Sequential(layer)
        dense_ms = _time_backward(model, x, reps)
        gather = GatherLinear(layer)
        gather_ms = _time_backward(gather, x, reps)
        sparse.wrap(model, max_density=1.0)
        rows.append({"density": density, "dense_ms": dense_ms, "sparse_ms": _time_backward(model, x, reps),
                     "gather_ms": gather_ms})
        sparse.unwrap(model)
    return rows


def _time_backward(model: nn.Module, x: torch.Tensor, reps: int) -> float:
    def once() -> None:
        model.zero_grad(set_to_none=True)
        x.grad = None
        model(x).sum().backward()

    for _ in range(3):
        once()
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    return (time.perf_counter() - t0) / reps * 1000


def run(params: Params, steps: int, fill_uninitialized: bool = False,
        memory_format: torch.memory_format = MEMORY_FORMAT, compiled: bool = False) -> dict[str, dict[str, float]]:
    setup(params.threads, params.kernels)
    seeded(params.seed)
    train = load_split(params.data.root, train=True, limit=params.data.train_limit, verify=params.data.verify)
    test = load_split(params.data.root, train=False, limit=params.data.test_limit, verify=params.data.verify)
    teacher = build_model(**model_args_from(params.model))
    dense = build_model(**model_args_from(params.model))
    student = build_model(**model_args_from(params.distill.student))
    return {"dense training": profile_training(dense, train, test, params, params.train.batch_size, steps,
                                               None, fill_uninitialized, memory_format, compiled),
            "distillation (student + teacher)": profile_training(student, train, test, params,
                                                                 params.distill.batch_size, steps, teacher,
                                                                 fill_uninitialized, memory_format, compiled)}


# The models `--serving` times: the dense one and the channel stage's.
SERVING_MODELS = {"dense": paths.DENSE_MODEL, "channel": paths.CHANNEL_MODEL}
LATENCY_KEEP = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)


@torch.inference_mode()
def latency_by_width(params: Params, keep: Sequence[float] = LATENCY_KEEP, runs: int = 300) -> list[dict]:
    """Batch-1 latency (median of `runs`) of the architecture with each hidden layer at `keep` of its width."""
    conv, hidden = params.model.conv_channels, params.model.hidden
    x = torch.rand(1, 1, 28, 28)
    rows = []
    for fraction in keep:
        widths = [max(1, round(fraction * n)) for n in (*conv, *hidden)]
        model = prepare(build_model(widths[:len(conv)], widths[len(conv):])).eval()
        rows.append({"kept": fraction, "conv_channels": widths[:len(conv)], "hidden": widths[len(conv):],
                     "latency_b1_ms": 1000 * median_seconds(lambda m=model: m(x), runs, warmup=20)})
    return rows


SERVING_FORMS = ("eager", "torchscript", "compiled")


def serving_form(model: nn.Module, form: str, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model as one would serve it: eager (what evaluate times), TorchScript (trace + freeze: one graph,
    weights folded in, no Python per op; torch marks torch.jit deprecated in favour of torch.compile) or
    torch.compile (Inductor generates C++ for this CPU: needs a C++ compiler where the model runs)."""
    if form == "eager":
        return model
    if form == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.freeze(torch.jit.trace(model, x))
    if form == "compiled":
        return torch.compile(model, dynamic=False)
    raise ValueError(f"serving form {form!r}: one of {list(SERVING_FORMS)}")


@torch.inference_mode()
def serving_latency(models: dict[str, nn.Module], forms: Sequence[str] = SERVING_FORMS, runs: int = 300,
                    rounds: int = 5) -> list[dict]:
    """Batch-1 latency of each model in each serving form: interleaved rounds (every form of every model once
    per round, so drifts of the machine hit them all), the median of `runs` per round, the median of the rounds.
    Each form is checked against the eager model's output first (max |difference| in the rows)."""
    x = torch.rand(1, 1, 28, 28)
    fns, diffs = {}, {}
    for name, model in models.items():
        model = prepare(model).eval()
        ref = model(x)
        for form in forms:
            fn = serving_form(model, form, x)
            diffs[name, form] = float((fn(x) - ref).abs().max())  # the first call also compiles
            if diffs[name, form] > 1e-4:
                raise RuntimeError(f"{name} as {form}: output differs from eager by {diffs[name, form]:.2e}")
            fns[name, form] = fn
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(rounds):
        for key, fn in fns.items():
            times[key].append(1000 * median_seconds(lambda f=fn: f(x), runs, warmup=20))
    return [{"model": name, "form": form, "latency_b1_ms": statistics.median(times[name, form]),
             "rounds_ms": [round(t, 3) for t in times[name, form]], "max_abs_diff": diffs[name, form]}
            for name, form in fns]


def _print_serving(params: Params) -> None:
    rows = serving_latency({name: load_model(path) for name, path in SERVING_MODELS.items()},
                           runs=params.evaluate.latency_runs)
    base = {r["form"]: r["latency_b1_ms"] for r in rows if r["model"] == "dense"}
    for r in rows:
        ms = r["latency_b1_ms"]
        print(f"  {r['model']:<8} {r['form']:<12} {ms:.3f} ms  {base[r['form']] / ms:.2f}x "
              f"vs dense in the same form, {base['eager'] / ms:.2f}x vs dense eager  "
              f"(rounds {r['rounds_ms']}, max |diff| {r['max_abs_diff']:.1e})")


def _print_latency_floor(params: Params) -> None:
    for row in latency_by_width(params, runs=params.evaluate.latency_runs):
        print(f"  {row['kept']:7.2%} of the channels: conv {row['conv_channels']}, FC {row['hidden']}: "
              f"{row['latency_b1_ms']:.3f} ms")


def _print_sparse_linear(params: Params) -> None:
    side = 28 >> len(params.model.conv_channels)
    sizes = [params.model.conv_channels[-1] * side * side, *params.model.hidden]
    for in_f, out_f in zip(sizes, sizes[1:], strict=False):
        print(f"\nFC {in_f} -> {out_f}, batch {params.prune.batch_size}: ms per forward + backward")
        for row in sparse_linear_timings(in_f, out_f, params.prune.batch_size, SPARSE_DENSITIES):
            print(f"  {row['density']:5.0%} kept   dense (masked) {row['dense_ms']:6.1f}   "
                  f"kept weights only: CSR {row['sparse_ms']:6.1f}, gather/index-add {row['gather_ms']:6.1f}")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True, metavar="{epoch,sparse-linear,latency-floor,serving}")
    epoch = sub.add_parser("epoch", help="one training epoch of the dense model and of the student, by part")
    epoch.add_argument("--steps", type=int, default=60, help="profiled training steps per model (scaled to an epoch)")
    epoch.add_argument("--memory-format", choices=list(FORMATS), default="channels_last",
                       help="layout of conv activations and weights (the stages use channels_last)")
    epoch.add_argument("--fill-uninitialized-memory", action="store_true",
                       help="let deterministic mode fill new tensors with NaN (the stages turn it off)")
    epoch.add_argument("--compile", action="store_true",
                       help="train through torch.compile (Inductor; needs a C++ compiler), as the stages do not")
    sub.add_parser("sparse-linear", help="each FC layer masked-dense vs on its kept weights only (CSR, "
                                         "gather/index-add), by density")
    sub.add_parser("latency-floor", help="batch-1 latency of the architecture with every hidden layer narrowed")
    sub.add_parser("serving", help="batch-1 latency of the dense and channel models (after `dvc repro`) served "
                                   "eager, as TorchScript and through torch.compile")
    args = ap.parse_args(argv)
    params = load_params()
    if args.what == "epoch":
        results = run(params, args.steps, args.fill_uninitialized_memory, FORMATS[args.memory_format], args.compile)
        for name, parts in results.items():
            print(f"\n{name}: seconds per epoch")
            for part, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
                print(f"  {part:<48} {seconds:7.2f}")
        return
    setup(params.threads, params.kernels)
    seeded(params.seed)
    {"serving": _print_serving, "latency-floor": _print_latency_floor,
     "sparse-linear": _print_sparse_linear}[args.what](params)


if __name__ == "__main__":
    cli(main)
