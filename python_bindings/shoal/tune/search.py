"""Search spaces and the basic variant generator (Ray's ray.tune.search / ray.tune.search.sample).

A param_space is a (nested) dict whose leaves are plain values, sampling domains (`choice`,
`uniform`, `loguniform`, `randint`, ...), `grid_search` lists or `sample_from` functions.
Every grid combination is repeated `num_samples` times; domains are sampled once per trial.
Sampling uses numpy's global random state unless BasicVariantGenerator(random_state=) is given,
so `np.random.seed(s)` or a random_state makes the configurations reproducible."""
import copy
import itertools
import math
import numbers

import numpy as np


class Domain:
    """A distribution one configuration value is drawn from."""

    def sample(self, rng, spec=None):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def _check_bounds(name, lower, upper, log=False):
    for bound in (lower, upper):
        if isinstance(bound, bool) or not isinstance(bound, numbers.Real):
            raise TypeError(f"{name}: bounds must be numbers, got {lower!r} and {upper!r}")
    if not lower < upper:
        raise ValueError(f"{name}: lower bound {lower!r} must be below upper bound {upper!r}")
    if log and lower <= 0:
        raise ValueError(f"{name}: a log-uniform range needs a lower bound above 0, got {lower!r}")


class Categorical(Domain):
    def __init__(self, categories):
        if not isinstance(categories, (list, tuple)) or not categories:
            raise ValueError(f"choice() needs a non-empty list of values, got {categories!r}")
        self.categories = list(categories)

    def sample(self, rng, spec=None):
        return self.categories[int(rng.randint(0, len(self.categories)))]


class Float(Domain):
    def __init__(self, lower, upper, log=False, base=10, q=None):
        _check_bounds("uniform" if not log else "loguniform", lower, upper, log)
        self.lower, self.upper, self.log, self.base, self.q = lower, upper, log, base, q

    def sample(self, rng, spec=None):
        if self.log:
            lo, hi = math.log(self.lower, self.base), math.log(self.upper, self.base)
            value = float(self.base ** rng.uniform(lo, hi))
        else:
            value = float(rng.uniform(self.lower, self.upper))
        if self.q is not None:
            value = float(np.round(value / self.q) * self.q)
        return value


class Normal(Domain):
    def __init__(self, mean=0.0, sd=1.0, q=None):
        if sd <= 0:
            raise ValueError(f"randn: sd must be above 0, got {sd!r}")
        self.mean, self.sd, self.q = mean, sd, q

    def sample(self, rng, spec=None):
        value = float(rng.normal(self.mean, self.sd))
        return float(np.round(value / self.q) * self.q) if self.q is not None else value


class Integer(Domain):
    def __init__(self, lower, upper, log=False, base=10, q=None):
        if not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in (lower, upper)):
            raise TypeError(f"randint: bounds must be integers, got {lower!r} and {upper!r}")
        _check_bounds("lograndint" if log else "randint", lower, upper, log)
        self.lower, self.upper, self.log, self.base, self.q = lower, upper, log, base, q

    def sample(self, rng, spec=None):
        if self.log:
            lo, hi = math.log(self.lower, self.base), math.log(self.upper, self.base)
            value = int(self.base ** rng.uniform(lo, hi))
            value = min(max(value, self.lower), self.upper - 1)
        else:
            value = int(rng.randint(self.lower, self.upper))  # upper exclusive, as in Ray
        if self.q is not None:
            value = int(np.round(value / self.q) * self.q)
        return value


class Function(Domain):
    def __init__(self, func):
        if not callable(func):
            raise TypeError(f"sample_from() takes a function, got {type(func).__name__}")
        self.func = func

    def sample(self, rng, spec=None):
        return self.func(spec)


def choice(categories):
    return Categorical(categories)


def uniform(lower, upper):
    return Float(lower, upper)


def quniform(lower, upper, q):
    return Float(lower, upper, q=q)


def loguniform(lower, upper, base=10):
    return Float(lower, upper, log=True, base=base)


def qloguniform(lower, upper, q, base=10):
    return Float(lower, upper, log=True, base=base, q=q)


def randint(lower, upper):
    return Integer(lower, upper)


def qrandint(lower, upper, q=1):
    return Integer(lower, upper + 1, q=q)  # Ray's qrandint includes upper


def lograndint(lower, upper, base=10):
    return Integer(lower, upper, log=True, base=base)


def randn(mean=0.0, sd=1.0):
    return Normal(mean, sd)


def qrandn(mean, sd, q):
    return Normal(mean, sd, q=q)


def sample_from(func):
    return Function(func)


def grid_search(values):
    """Every value of `values` gets its own trials (Ray's {"grid_search": values})."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"grid_search() needs a non-empty list of values, got {values!r}")
    return {"grid_search": list(values)}


def _is_grid(value):
    return isinstance(value, dict) and set(value) == {"grid_search"}


def _leaves(space, path=()):
    """(path, leaf) for every grid, domain or plain value of a nested dict."""
    if isinstance(space, dict) and not _is_grid(space):
        for key, value in space.items():
            yield from _leaves(value, path + (key,))
    else:
        yield path, space


def _set(config, path, value):
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


class _Spec:
    """What a sample_from function gets: `spec.config` is the configuration so far."""

    def __init__(self, config):
        self.config = config


class BasicVariantGenerator:
    """Grid combinations x num_samples, random domains sampled per trial (Ray's
    ray.tune.search.BasicVariantGenerator). `random_state` (an int or a numpy RandomState)
    seeds the sampling; None samples from numpy's global random state. `max_concurrent` (0: no
    limit) caps the trials running at once, with TuneConfig.max_concurrent_trials."""

    def __init__(self, random_state=None, max_concurrent=0, constant_grid_search=False, points_to_evaluate=None):
        if random_state is not None and not isinstance(random_state, (numbers.Integral, np.random.RandomState)):
            raise TypeError("random_state must be an int or a numpy RandomState")
        if points_to_evaluate:
            raise ValueError("BasicVariantGenerator(points_to_evaluate=...) is not supported by Shoal")
        if constant_grid_search:
            raise ValueError("BasicVariantGenerator(constant_grid_search=True) is not supported by Shoal")
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, numbers.Integral) or max_concurrent < 0:
            raise ValueError(f"BasicVariantGenerator(max_concurrent={max_concurrent!r}): must be an integer >= 0 "
                             "(0: no limit)")
        self.random_state = random_state
        self.max_concurrent = max_concurrent

    def _rng(self):
        if self.random_state is None:
            return np.random.mtrand._rand  # numpy's global RandomState, which np.random.seed seeds
        if isinstance(self.random_state, np.random.RandomState):
            return self.random_state
        return np.random.RandomState(int(self.random_state))

    def variants(self, param_space, num_samples):
        """The configurations of every trial, in order."""
        rng = self._rng()
        leaves = list(_leaves(param_space or {}))
        grids = [(path, value["grid_search"]) for path, value in leaves if _is_grid(value)]
        combos = list(itertools.product(*[values for _, values in grids])) or [()]
        out = []
        for _ in range(num_samples):
            for combo in combos:
                config = copy.deepcopy(param_space or {})
                for (path, _), value in zip(grids, combo):
                    _set(config, path, copy.deepcopy(value))
                functions = []
                for path, value in leaves:
                    if isinstance(value, Function):
                        functions.append(path)
                    elif isinstance(value, Domain):
                        _set(config, path, value.sample(rng))
                for path in functions:  # after the other values, which they may read
                    _set(config, path, _leaf_function(param_space, path).sample(rng, _Spec(config)))
                out.append(config)
        return out


def _leaf_function(space, path):
    node = space
    for key in path:
        node = node[key]
    return node


def count_grid(param_space):
    return math.prod(len(v["grid_search"]) for _, v in _leaves(param_space or {}) if _is_grid(v))


__all__ = ["BasicVariantGenerator", "choice", "uniform", "quniform", "loguniform", "qloguniform", "randint",
           "qrandint", "lograndint", "randn", "qrandn", "sample_from", "grid_search", "Domain"]
