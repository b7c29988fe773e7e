"""A registry of specs by name: the datasets' (`data.specs`) and the methods' (`utils.methods`).

Standard library only, so that checking a config can read the specs before torch loads.
"""

from typing import Dict, Generic, List, TypeVar

Spec = TypeVar("Spec")


class Registry(Generic[Spec]):
    """Specs of one kind ('dataset', 'method') by their `name`, in registration order.

    Args:
        kind: what the specs describe, for error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._specs: Dict[str, Spec] = {}

    def register(self, spec: Spec) -> Spec:
        """Make a spec selectable by its `name`; a name is registered once.

        Args:
            spec: the spec.
        Returns:
            The spec.
        """
        known = self._specs.get(spec.name)
        if known is not None and known is not spec:
            raise ValueError(f"{self.kind} {spec.name!r} is registered already")
        self._specs[spec.name] = spec
        return spec

    def names(self) -> List[str]:
        """The registered names, in registration order."""
        return list(self._specs)

    def get(self, name: str) -> Spec:
        """The spec registered as `name` (ValueError naming the registered ones otherwise)."""
        if name not in self._specs:
            raise ValueError(f"{self.kind} must be one of {self.names()}, got {name!r}")
        return self._specs[name]
