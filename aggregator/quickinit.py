"""A cheaper ``__init__`` for the frozen, slotted dataclasses a poll makes by the thousand.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``
(looked up and called by name per field): a ``PollRecord`` costs ~2 us to build, and a warm
poll builds five such objects, ~5 % of its CPU (issue #16). ``quick_init`` replaces that
``__init__`` with one of the very same signature that writes each slot through its own
descriptor (``member_descriptor.__set__``, what ``object.__setattr__`` ends up calling): the
same object, immutable as before, in about 40 % less time. Defaults, default factories,
keyword-only fields, fields left out of ``__init__`` and ``__post_init__`` behave as the
dataclass's own; a class with ``InitVar`` fields is refused (its signature would differ).

The dataclass's own ``__init__`` is kept as ``__dataclass_init__``: the plain path that
tests hold ``quick_init``'s equal to (tests/test_seams.py).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

C = TypeVar("C", bound=type)
_FACTORY = object()  # a parameter whose default comes from a default_factory


def quick_init(cls: C) -> C:
    """Give the frozen, slotted dataclass ``cls`` the faster ``__init__`` (the module doc)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init is for frozen, slotted dataclasses")
    names: dict[str, Any] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):
        setter = f"_set_{f.name}"
        names[setter] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            names[f"_default_{f.name}"] = f.default
            default = f"_default_{f.name}"
        elif f.default_factory is not dataclasses.MISSING:
            names[f"_factory_{f.name}"] = f.default_factory
            default = "_FACTORY"
        else:
            default = ""
        if not f.init:  # set from its default (or factory), as the dataclass does
            if not default:
                continue
            value = f"_factory_{f.name}()" if default == "_FACTORY" else default
            body.append(f"{setter}(self, {value})")
            continue
        (keyword if f.kw_only else positional).append(f"{f.name}={default}" if default else f.name)
        if default == "_FACTORY":
            body.append(f"if {f.name} is _FACTORY: {f.name} = _factory_{f.name}()")
        body.append(f"{setter}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({signature}):\n    " + "\n    ".join(body or ["pass"]) + "\n"
    exec(source, names)  # the same way dataclasses builds its own
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    plain = cls.__dict__["__init__"]
    init.__doc__ = plain.__doc__
    if _shape(init) != _shape(plain):  # an InitVar, say
        raise TypeError(f"{cls.__name__}: quick_init cannot build this signature")
    cls.__dataclass_init__ = plain  # type: ignore[attr-defined]
    cls.__init__ = init  # type: ignore[misc]
    return cls


def _shape(init: Any) -> list[tuple[str, Any, bool]]:
    """Each parameter's name, kind and whether it has a default (annotations and the
    factories' sentinels aside)."""
    return [(p.name, p.kind, p.default is not p.empty) for p in
            inspect.signature(init).parameters.values()]  # fmt: skip
