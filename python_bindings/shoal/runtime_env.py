"""shoal.runtime_env.RuntimeEnv: Ray's class for a runtime environment, a dict checked on
construction (see shoal/_private/runtime_env.py for what each key does)."""
from shoal._private import runtime_env as _renv


class RuntimeEnv(dict):
    def __init__(self, *, py_modules=None, working_dir=None, pip=None, uv=None, env_vars=None, excludes=None,
                 **kwargs):
        fields = {"py_modules": py_modules, "working_dir": working_dir, "pip": pip, "uv": uv,
                  "env_vars": env_vars, "excludes": excludes, **kwargs}
        fields = {k: v for k, v in fields.items() if v is not None}
        _renv.validate(fields)  # unknown or refused keys raise here, by name
        super().__init__(fields)

    def to_dict(self):
        return dict(self)


__all__ = ["RuntimeEnv"]
