"""One state-machine helper shared by every stateful model."""

from __future__ import annotations

from collections.abc import Mapping

from unpuzzle.exceptions import InvalidTransition


def apply_transition(instance, *, allowed: Mapping[str, frozenset[str]], new: str, field: str = "status") -> str:
    """Set ``instance.<field>`` to ``new`` if the move is allowed; raise otherwise.

    Returns the previous value. The caller saves with ``update_fields``.
    """
    current = str(getattr(instance, field))
    new = str(new)
    if new not in allowed.get(current, frozenset()):
        label = type(instance).__name__
        raise InvalidTransition(
            f"{label} {instance.pk} cannot go from {current!r} to {new!r}; "
            f"allowed from {current!r}: {', '.join(sorted(map(str, allowed.get(current, ())))) or 'none (final state)'}"
        )
    setattr(instance, field, new)
    return current
