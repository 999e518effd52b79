"""A small name -> object registry shared by operators, solvers, models and image sets."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from ipbench.errors import UsageError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names (and aliases) to registered objects; unknown names list the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, item: T, aliases: tuple[str, ...] = ()) -> T:
        for key in (name, *aliases):
            if key in self._items or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        self._items[name] = item
        for alias in aliases:
            self._aliases[alias] = name
        return item

    def decorator(self, name: str, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def register(item: T) -> T:
            return self.add(name, item, aliases)

        return register

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases."""
        name = self._aliases.get(name, name)
        if name not in self._items:
            raise UsageError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return name

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, target in self._aliases.items() if target == name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
