"""Call signatures checked where Ray checks them: at `.remote()`, so that a call with arguments
its function cannot take raises TypeError in the caller instead of failing remotely.

A signature travels with an actor's handles as a plain list of (name, kind, has_default), so
that handles got by name or passed between processes check calls too (Ray does the same)."""
import inspect

_NO_DEFAULT = inspect.Parameter.empty
_DEFAULT = object()  # stands for any default value: only whether there is one matters


def describe(fn, drop_first=False):
    """[(name, kind, has_default)] of `fn`'s parameters, or None when it has no inspectable
    signature (builtins, some C callables): then calls are not checked."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if drop_first and params and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                     inspect.Parameter.POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return [(p.name, int(p.kind), p.default is not _NO_DEFAULT) for p in params]


class _Checked:
    """A signature to bind calls to, with a fast answer for the common call: only positional
    arguments to a function whose parameters are all plain (no *args, **kwargs, keyword-only or
    positional-only), which binds exactly when their number is within range."""
    __slots__ = ("signature", "plain", "required", "total")

    def __init__(self, described):
        self.signature = inspect.Signature([inspect.Parameter(name, inspect._ParameterKind(kind),
                                                              default=_DEFAULT if has_default else _NO_DEFAULT)
                                            for name, kind, has_default in described])
        self.plain = all(kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for _, kind, _ in described)
        self.total = len(described)
        self.required = sum(1 for _, _, has_default in described if not has_default)

    def bind(self, *args, **kwargs):
        if not kwargs and self.plain and self.required <= len(args) <= self.total:
            return None
        return self.signature.bind(*args, **kwargs)


def rebuild(described):
    """What `check` binds calls to, from describe()'s list (None: calls are not checked)."""
    if described is None:
        return None
    return _Checked(described)


def check(signature, args, kwargs, what):
    """TypeError (Ray's wording) when `args`/`kwargs` do not bind to `signature`."""
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{what}: {e}") from None
