"""Kubernetes resource quantities ("191450m", "1938410Mi", "47060071478", "1.5Gi")."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def parse(value: object) -> Decimal:
    """A quantity as a Decimal in base units (cores, bytes, counts); ValueError if malformed."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    text = str(value).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            break
    else:
        number, suffix = text, ""
    try:
        amount = Decimal(number) if len(number) <= 64 else Decimal("NaN")
    except InvalidOperation:
        amount = Decimal("NaN")
    # Kubernetes' own quantities stay far inside 1e30 (its parser caps at 2^63 milli-units);
    # Infinity, NaN or 1e999999999 from a broken server would overflow every int() after this
    if not amount.is_finite() or amount.adjusted() > 30:
        raise ValueError(f"not a Kubernetes quantity: {str(value)[:40]!r}")
    return amount * _SUFFIX[suffix]


def milli(value: object) -> int:
    """Quantity in thousandths, rounded up as the scheduler does for CPU (MilliValue)."""
    q = parse(value) * 1000
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def units(value: object) -> int:
    """Quantity in whole units, rounded up (Value())."""
    return int(parse(value).to_integral_value(rounding="ROUND_CEILING"))


def human(resource: str, amount: int) -> str:
    """A scheduler-scale amount (milli-CPU for cpu, bytes for memory, units else) for people."""
    if resource == "cpu":
        return f"{amount / 1000:g}" if amount % 1000 == 0 or amount >= 10000 else f"{amount}m"
    if resource in ("memory", "ephemeral-storage") or resource.startswith("hugepages-"):
        gib = amount / 2**30
        return f"{gib:.1f}Gi" if gib >= 1 else f"{amount / 2**20:.0f}Mi"
    return str(amount)


__all__ = ["parse", "milli", "units", "human"]
