"""Parameter counts of an ASRModel: total, per top-level part (encoder, decoder, transducer,
ctc, and the training-only intermediate decoders and InterCTC heads) and per part's children, each
parameter counted once (tied weights are not double counted); for Mixture-of-Experts and
training-only modules also what decoding uses:

- ``training_only``: parameters only training losses use (intermediate decoders, InterCTC
  heads of their own, the CTC head of an MoE shared embedding);
- ``inference``: ``total - training_only``, what a decoding model holds;
- ``active_per_frame``: ``inference`` minus the experts a frame does not go through
  ((num_experts - top_k) experts of every MoE layer): the parameters one frame meets.

    counts = count_parameters(model)   # {"total": ..., "encoder": ..., "active_per_frame": ...}
    print(format_parameter_table(counts))
"""

from __future__ import annotations

from torch import nn

from asrkit.models.moe import MoEFeedForward

PARTS = ("encoder", "decoder", "transducer", "ctc", "inter_decoders", "interctc")
# shown in the table only when non-empty
OPTIONAL_PARTS = ("transducer", "inter_decoders", "interctc")


def _unique_numel(module: nn.Module | None, seen: set[int]) -> int:
    if module is None:
        return 0
    total = 0
    for param in module.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


def count_parameters(model: nn.Module) -> dict:
    """-> {"total", "encoder", "decoder", "transducer", "ctc", "inter_decoders", "interctc",
    "training_only", "inference", "active_per_frame": int,
    "components": {"encoder.layers": int, ...}}.

    Parts missing from the model (``decoder`` of a CTC-only model) count 0; a parameter shared
    by two parts counts in the first of PARTS."""
    seen: set[int] = set()
    counts: dict = {"total": _unique_numel(model, set())}
    counts.update({part: _unique_numel(getattr(model, part, None), seen) for part in PARTS})
    components: dict[str, int] = {}
    seen_components: set[int] = set()
    for part in PARTS:
        module = getattr(model, part, None)
        if module is None:
            continue
        for name, child in module.named_children():
            n = _unique_numel(child, seen_components)
            if n:
                components[f"{part}.{name}"] = n
    counts["components"] = components
    training_only = getattr(model, "training_only_modules", list)()
    seen_training: set[int] = set()
    counts["training_only"] = sum(_unique_numel(m, seen_training) for m in training_only)
    counts["inference"] = counts["total"] - counts["training_only"]
    idle = sum((m.num_experts - m.top_k) * m.expert_parameters()
               for m in model.modules() if isinstance(m, MoEFeedForward))
    counts["active_per_frame"] = counts["inference"] - idle
    return counts


def format_parameter_table(counts: dict) -> str:
    """The counts of ``count_parameters`` as an aligned text table."""
    rows: list[tuple[str, int]] = []
    for part in PARTS:
        if part in OPTIONAL_PARTS and not counts.get(part):
            continue
        rows.append((part, counts[part]))
        rows += [("  " + name.split(".", 1)[1], n)
                 for name, n in counts["components"].items() if name.startswith(part + ".")]
    rows.append(("total", counts["total"]))
    if counts.get("training_only"):
        rows += [("  training only", counts["training_only"]),
                 ("  at inference", counts["inference"])]
    if counts.get("active_per_frame", counts["total"]) != counts.get("inference"):
        rows.append(("  active per frame", counts["active_per_frame"]))
    width = max(len(name) for name, _ in rows)
    total = max(counts["total"], 1)
    lines = [f"{'component':<{width}}  {'parameters':>12}  {'share':>6}"]
    for name, n in rows:
        lines.append(f"{name:<{width}}  {n:>12,}  {100 * n / total:>5.1f}%")
    return "\n".join(lines)
