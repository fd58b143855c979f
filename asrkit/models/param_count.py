"""Parameter counts of an ASRModel: total, per top-level part (encoder, decoder, ctc) and per
part's children, each parameter counted once (tied weights are not double counted).

    counts = count_parameters(model)   # {"total": ..., "encoder": ..., "decoder": ..., ...}
    print(format_parameter_table(counts))
"""

from __future__ import annotations

from torch import nn

PARTS = ("encoder", "decoder", "ctc")


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
    """-> {"total", "encoder", "decoder", "ctc": int, "components": {"encoder.layers": int, ...}}.

    Parts missing from the model (``decoder`` of a CTC-only model) count 0; a parameter shared
    by two parts counts in the first of encoder, decoder, ctc."""
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
    return counts


def format_parameter_table(counts: dict) -> str:
    """The counts of ``count_parameters`` as an aligned text table."""
    rows: list[tuple[str, int]] = []
    for part in PARTS:
        rows.append((part, counts[part]))
        rows += [("  " + name.split(".", 1)[1], n)
                 for name, n in counts["components"].items() if name.startswith(part + ".")]
    rows.append(("total", counts["total"]))
    width = max(len(name) for name, _ in rows)
    total = max(counts["total"], 1)
    lines = [f"{'component':<{width}}  {'parameters':>12}  {'share':>6}"]
    for name, n in rows:
        lines.append(f"{name:<{width}}  {n:>12,}  {100 * n / total:>5.1f}%")
    return "\n".join(lines)
