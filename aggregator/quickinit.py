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
import functools

TYPE_CHECKING = False  # not ``typing``'s: importing it costs the CLI's start-up 3 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar

    C = TypeVar("C", bound=type)

_FACTORY = object()  # a parameter whose default comes from a default_factory


def quick_init(cls: C) -> C:
    """Give the frozen, slotted dataclass ``cls`` the faster ``__init__`` (the module doc).

    Its code is built at the first construction, not here: importing the value types stays as
    cheap as before (the CLI's start-up, issue #12); the signature is checked here.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__}: quick_init is for frozen, slotted dataclasses")
    plain = cls.__dict__["__init__"]
    positional, keyword = _parameters(cls)
    code = plain.__code__
    args = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    defaults = len(plain.__defaults__ or ()) + len(plain.__kwdefaults__ or {})
    if (
        args != ("self", *(name for name, _ in positional), *(name for name, _ in keyword))
        or code.co_kwonlyargcount != len(keyword)
        or defaults != sum(bool(d) for _, d in positional + keyword)
    ):  # an InitVar, say
        raise TypeError(f"{cls.__name__}: quick_init cannot build this signature")

    @functools.wraps(plain)  # (its signature, for ``inspect`` and hypothesis)
    def first(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _build(cls, plain, positional, keyword)
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    type.__setattr__(cls, "__dataclass_init__", plain)
    type.__setattr__(cls, "__init__", first)
    return cls


def _parameters(cls: type) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The positional and keyword-only parameters of ``cls.__init__``: (name, default), the
    default as ``_build`` spells it ("" for none)."""
    positional: list[tuple[str, str]] = []
    keyword: list[tuple[str, str]] = []
    for f in dataclasses.fields(cls):
        if f.init:
            (keyword if f.kw_only else positional).append((f.name, _default(f)))
    return positional, keyword


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return f"_default_{f.name}"
    if f.default_factory is not dataclasses.MISSING:
        return "_FACTORY"
    return ""


def _build(
    cls: type,
    plain: Any,
    positional: list[tuple[str, str]],
    keyword: list[tuple[str, str]],
) -> Any:
    """The ``__init__`` itself: each slot set through its descriptor, defaults as the
    dataclass's, then ``__post_init__``."""
    names: dict[str, Any] = {"_FACTORY": _FACTORY}
    body: list[str] = []
    for f in dataclasses.fields(cls):
        setter = f"_set_{f.name}"
        names[setter] = cls.__dict__[f.name].__set__
        default = _default(f)
        if default == "_FACTORY":
            names[f"_factory_{f.name}"] = f.default_factory
        elif default:
            names[default] = f.default
        if not f.init:  # set from its default (or factory), as the dataclass does
            if default:
                value = f"_factory_{f.name}()" if default == "_FACTORY" else default
                body.append(f"{setter}(self, {value})")
            continue
        if default == "_FACTORY":
            body.append(f"if {f.name} is _FACTORY: {f.name} = _factory_{f.name}()")
        body.append(f"{setter}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    spelled = [f"{name}={default}" if default else name for name, default in positional]
    if keyword:
        spelled += ["*", *(f"{name}={default}" if default else name for name, default in keyword)]
    source = f"def __init__({', '.join(['self', *spelled])}):\n    " + "\n    ".join(
        body or ["pass"]
    )
    exec(source, names)  # the same way dataclasses builds its own
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = plain.__doc__
    return init
