"""Runtime environments (Ray's runtime_env): checked, merged and resolved here, set up by the
raylet that starts the worker (src/raylet/runtime_env_agent.h).

    validate(env)          the user's dict, checked and normalized (clear errors, nothing ignored)
    merge(parent, child)   Ray's inheritance: child keys replace the parent's, env_vars merge
    resolve(core, env)     local directories and files zipped, content-hashed and uploaded once
                           to the GCS package store; requirement files read; answers what the
                           core takes (rpc::RuntimeEnv as JSON)

Supported keys: env_vars, working_dir and py_modules (local directories, .zip files, .whl files
for py_modules, gcs:// URIs of uploaded packages, module objects), excludes (gitignore-style
patterns for the uploaded directories), pip and uv (a list of requirements, a requirements file,
or Ray's dict form). conda, container and image_uri are refused: this cluster cannot provide them.
"""
import fnmatch
import hashlib
import io
import json
import os
import threading
import types
import zipfile

SCHEME = "gcs://"
DEFAULT_MAX_PACKAGE_BYTES = 500 << 20
_SUPPORTED = ("env_vars", "working_dir", "py_modules", "excludes", "pip", "uv")
_REFUSED = {
    "conda": "conda is not installed on Shoal clusters; use 'pip' or 'uv' for Python packages",
    "container": "Shoal does not start workers in containers; build the image with your dependencies instead",
    "image_uri": "Shoal does not start workers in containers; build the image with your dependencies instead",
}
_PIP_KEYS = {"packages", "pip_install_options", "pip_check", "pip_version"}
_UV_KEYS = {"packages", "uv_pip_install_options", "uv_check", "uv_version"}


def max_package_bytes():
    try:
        value = int(os.environ.get("SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES", ""))
        return value if value > 0 else DEFAULT_MAX_PACKAGE_BYTES
    except ValueError:
        return DEFAULT_MAX_PACKAGE_BYTES


def _is_uri(value):
    return isinstance(value, str) and "://" in value


def _check_uri(value, what, extensions=(".zip",)):
    if not value.startswith(SCHEME):
        raise ValueError(f"runtime_env['{what}']: {value!r} is a remote URI Shoal cannot fetch; give a local "
                         f"path or a {SCHEME} URI of a package uploaded to this cluster")
    if not value.endswith(extensions):
        raise ValueError(f"runtime_env['{what}']: {value!r} must name a {' or '.join(extensions)} package")


def _requirements(value, key):
    """A list of requirement lines from a list, or from a requirements file path."""
    if isinstance(value, str):
        if not os.path.isfile(value):
            raise ValueError(f"runtime_env['{key}']: {value!r} is not a requirements file (give a list of "
                             f"requirements, or the path of an existing file)")
        with open(value) as f:
            lines = [line.strip() for line in f]
        return [line for line in lines if line and not line.startswith("#")]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        out = [v.strip() for v in value if v.strip()]
        for line in out:
            if "\n" in line or "\r" in line:
                raise ValueError(f"runtime_env['{key}']: {line!r} is not one requirement")
        return out
    raise TypeError(f"runtime_env['{key}'] must be a list of requirement strings, a requirements file path, or a "
                    f"dict with 'packages'; got {type(value).__name__}")


def _installer_spec(value, key):
    """pip/uv in Ray's forms, as {"packages": [...], "<key>_install_options": [...]}."""
    options_key = "pip_install_options" if key == "pip" else "uv_pip_install_options"
    if isinstance(value, dict):
        allowed = _PIP_KEYS if key == "pip" else _UV_KEYS
        unknown = set(value) - allowed
        if unknown:
            raise ValueError(f"runtime_env['{key}'] does not take {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(allowed))})")
        for flag in ("pip_check", "uv_check"):
            if value.get(flag):
                raise ValueError(f"runtime_env['{key}']['{flag}']=True is not supported by Shoal")
        for version in ("pip_version", "uv_version"):
            if value.get(version):
                raise ValueError(f"runtime_env['{key}']['{version}'] is not supported by Shoal: the node's own "
                                 f"{key} installs the packages")
        if "packages" not in value:
            raise ValueError(f"runtime_env['{key}'] as a dict needs 'packages'")
        packages = _requirements(value["packages"], key)
        options = value.get(options_key, [])
        if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
            raise TypeError(f"runtime_env['{key}']['{options_key}'] must be a list of strings")
        return {"packages": packages, options_key: list(options)}
    return {"packages": _requirements(value, key), options_key: []}


def _local_path(value, what):
    if isinstance(value, types.ModuleType):
        path = getattr(value, "__file__", None)
        if not path:
            raise ValueError(f"runtime_env['{what}']: module {value.__name__} has no file to upload")
        return os.path.dirname(path) if os.path.basename(path) == "__init__.py" else path
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"runtime_env['{what}'] entries must be paths, modules or {SCHEME} URIs, got "
                        f"{type(value).__name__}")
    return value


def validate(runtime_env):
    """The user's runtime_env (a dict or RuntimeEnv), checked; answers a normalized copy."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(runtime_env).__name__}")
    out = {}
    for key, value in runtime_env.items():
        if key in _REFUSED:
            raise ValueError(f"runtime_env['{key}'] is not supported: {_REFUSED[key]}")
        if key not in _SUPPORTED:
            raise ValueError(f"runtime_env key {key!r} is not supported by Shoal (supported: {', '.join(_SUPPORTED)})")
        if value is None:
            continue
        out[key] = value
    if "env_vars" in out:
        env_vars = out["env_vars"]
        if not isinstance(env_vars, dict):
            raise TypeError("runtime_env['env_vars'] must be a dict of str to str")
        for k, v in env_vars.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"runtime_env['env_vars'] must map str names to str values, got {k!r}: {v!r}")
            if not k or not (k[0].isalpha() or k[0] == "_") or not all(c.isalnum() or c == "_" for c in k):
                raise ValueError(f"runtime_env['env_vars']: {k!r} is not an environment variable name")
        out["env_vars"] = dict(env_vars)
    if "working_dir" in out:
        wd = _local_path(out["working_dir"], "working_dir")
        if _is_uri(wd):
            _check_uri(wd, "working_dir")
        elif not (os.path.isdir(wd) or (os.path.isfile(wd) and wd.endswith(".zip"))):
            raise ValueError(f"runtime_env['working_dir']: {wd!r} is not an existing local directory or .zip file")
        out["working_dir"] = wd
    if "py_modules" in out:
        modules = out["py_modules"]
        if not isinstance(modules, (list, tuple)):
            raise TypeError("runtime_env['py_modules'] must be a list")
        checked = []
        for m in modules:
            path = _local_path(m, "py_modules")
            if _is_uri(path):
                _check_uri(path, "py_modules", (".zip", ".whl"))
            elif not os.path.exists(path):
                raise ValueError(f"runtime_env['py_modules']: {path!r} does not exist")
            elif os.path.isfile(path) and not path.endswith((".zip", ".whl", ".py")):
                raise ValueError(f"runtime_env['py_modules']: {path!r} must be a directory, a .py, .zip or .whl file")
            checked.append(path)
        out["py_modules"] = checked
    if "excludes" in out:
        excludes = out["excludes"]
        if not isinstance(excludes, (list, tuple)) or not all(isinstance(e, str) for e in excludes):
            raise TypeError("runtime_env['excludes'] must be a list of gitignore-style patterns")
        out["excludes"] = list(excludes)
    if "pip" in out and "uv" in out:
        raise ValueError("runtime_env cannot have both 'pip' and 'uv'")
    for key in ("pip", "uv"):
        if key in out:
            out[key] = _installer_spec(out[key], key)
    return out


def merge(parent, child):
    """Ray's inheritance of a task's or actor's runtime_env: the child's keys replace the
    parent's, except env_vars, which merge (the child's variables win)."""
    merged = dict(parent or {})
    for key, value in (child or {}).items():
        if key == "env_vars" and isinstance(merged.get("env_vars"), dict):
            merged["env_vars"] = {**merged["env_vars"], **value}
        else:
            merged[key] = value
    if "pip" in (child or {}):
        merged.pop("uv", None)
    if "uv" in (child or {}):
        merged.pop("pip", None)
    return merged


def merge_job_and_driver(job_env, driver_env):
    """A submitted job's runtime_env with the one its driver gives init(): merged (env_vars
    variable by variable); a key both set differently is an error, unless
    SHOAL_OVERRIDE_JOB_RUNTIME_ENV=1 (or Ray's RAY_OVERRIDE_JOB_RUNTIME_ENV=1) lets the driver's win."""
    if not job_env:
        return dict(driver_env or {})
    if not driver_env:
        return dict(job_env)
    if "1" in (os.environ.get("SHOAL_OVERRIDE_JOB_RUNTIME_ENV"), os.environ.get("RAY_OVERRIDE_JOB_RUNTIME_ENV")):
        return merge(job_env, driver_env)
    merged = dict(job_env)
    for key, value in driver_env.items():
        if key == "env_vars":
            env_vars = dict(merged.get("env_vars") or {})
            for name, v in value.items():
                if name in env_vars and env_vars[name] != v:
                    raise ValueError(f"runtime_env env_vars[{name!r}]: the job's is {env_vars[name]!r}, init() gives "
                                     f"{v!r}; set SHOAL_OVERRIDE_JOB_RUNTIME_ENV=1 to let init()'s win")
                env_vars[name] = v
            merged["env_vars"] = env_vars
        elif key in merged and merged[key] != value:
            raise ValueError(f"runtime_env[{key!r}] is set both by the job ({merged[key]!r}) and by init() "
                             f"({value!r}); set SHOAL_OVERRIDE_JOB_RUNTIME_ENV=1 to let init()'s win")
        else:
            merged[key] = value
    return merged


def _excluded(rel, is_dir, patterns):
    """gitignore-style: a pattern with a '/' (other than a trailing one) is anchored at the
    directory's root, else it matches a name at any depth; a trailing '/' matches directories;
    '!' re-includes."""
    name = rel.rsplit("/", 1)[-1]
    excluded = False
    for raw in patterns:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        if negate:
            pattern = pattern[1:]
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        anchored = "/" in pattern
        pattern = pattern.lstrip("/")
        if anchored:
            hit = fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(rel, pattern.replace("**/", ""))
        else:
            hit = fnmatch.fnmatchcase(name, pattern)
        if hit:
            excluded = not negate
    return excluded


def _zip_directory(path, excludes, top=None):
    """A deterministic zip of the directory (sorted, fixed timestamps, modes kept): the same
    files give the same bytes, so the same package name."""
    buffer = io.BytesIO()
    limit = max_package_bytes()
    total = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for root, dirs, files in os.walk(path):
            rel_root = os.path.relpath(root, path)
            rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
            dirs[:] = sorted(d for d in dirs if not _excluded(rel_root + d, True, excludes))
            for name in sorted(files):
                rel = rel_root + name
                full = os.path.join(root, name)
                if _excluded(rel, False, excludes) or not os.path.isfile(full):
                    continue
                total += os.path.getsize(full)
                if total > limit:
                    raise ValueError(f"runtime_env: {path} is over the package limit of {limit} bytes "
                                     f"(SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES); leave large files out with "
                                     f"runtime_env['excludes']")
                info = zipfile.ZipInfo((top + "/" if top else "") + rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (os.stat(full).st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as f:
                    zf.writestr(info, f.read(), compresslevel=1)
    return buffer.getvalue()


def _zip_file(path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(os.path.basename(path), date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        with open(path, "rb") as f:
            zf.writestr(info, f.read())
    return buffer.getvalue()


def _read_limited(path):
    limit = max_package_bytes()
    if os.path.getsize(path) > limit:
        raise ValueError(f"runtime_env: {path} is over the package limit of {limit} bytes "
                         f"(SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES)")
    with open(path, "rb") as f:
        return f.read()


def _upload(core, data, extension, suffix=""):
    digest = hashlib.sha256(data).hexdigest()[:32]
    uri = f"{SCHEME}_shoal_pkg_{digest}{suffix}{extension}"
    # Referenced first: a package found here is not deleted by another job's end meanwhile.
    _reference(core, uri)
    if not core.package_exists(uri):
        core.upload_package(uri, data)
    return uri


_cache_lock = threading.Lock()
_cache = {}  # (job, kind, path, excludes) -> uri


def _package(core, kind, path, excludes):
    # Per job: a finished job's packages may be deleted from the GCS (ReleasePackagesOf).
    key = (core.job_id, kind, os.path.abspath(path), tuple(excludes))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    if kind == "wheel":
        name = os.path.basename(path)
        uri = _upload(core, _read_limited(path), ".whl", "_" + name[:-len(".whl")])
    elif path.endswith(".zip") and os.path.isfile(path):
        uri = _upload(core, _read_limited(path), ".zip")
    elif os.path.isfile(path):  # a single-file module
        uri = _upload(core, _zip_file(path), ".zip")
    elif kind == "module":
        uri = _upload(core, _zip_directory(path, excludes, top=os.path.basename(os.path.abspath(path))), ".zip")
    else:
        uri = _upload(core, _zip_directory(path, excludes), ".zip")
    with _cache_lock:
        _cache[key] = uri
    return uri


REFS_NAMESPACE = "package_refs"  # src/common/runtime_env.h: "<job id hex>|<uri>"
_referenced = set()  # (job, uri) this process has recorded


def _reference(core, uri):
    """Records that this process's job uses package `uri`: when the job finishes, the GCS deletes
    the packages no unfinished job references (GcsServer::ReleasePackagesOf)."""
    key = (core.job_id, uri)
    with _cache_lock:
        if key in _referenced:
            return uri
    core.kv_put(REFS_NAMESPACE, f"{core.job_id}|{uri}", b"", True)
    with _cache_lock:
        _referenced.add(key)
    return uri


def resolve_packages(core, env):
    """`env` (validated) with local paths uploaded: working_dir and py_modules become gcs:// URIs
    (each recorded as used by this job) and excludes is dropped (applied)."""
    out = dict(env)
    excludes = out.pop("excludes", [])
    if "working_dir" in out:
        wd = out["working_dir"]
        out["working_dir"] = _reference(core, wd if _is_uri(wd) else _package(core, "dir", wd, excludes))
    if "py_modules" in out:
        uris = []
        for m in out["py_modules"]:
            if _is_uri(m):
                uris.append(_reference(core, m))
            else:
                kind = "wheel" if m.endswith(".whl") else "module"
                uris.append(_reference(core, _package(core, kind, m, excludes)))
        out["py_modules"] = uris
    return out


def to_core(env, interpreter, python_path, namespace=None):
    """rpc::RuntimeEnv (JSON) for a resolved env: what the raylet sets up. `namespace` (the
    job's) travels with it to the workers, which look named actors up there."""
    proto = {"python_path": list(python_path)}
    if env.get("env_vars"):
        proto["env_vars"] = env["env_vars"]
    if env.get("working_dir"):
        proto["working_dir"] = env["working_dir"]
    modules = env.get("py_modules") or []
    if modules:
        proto["py_modules"] = [m for m in modules if m.endswith(".zip")]
        proto["py_module_wheels"] = [m for m in modules if m.endswith(".whl")]
    for key, options_key in (("pip", "pip_install_options"), ("uv", "uv_pip_install_options")):
        spec = env.get(key)
        if spec:
            proto["pip_packages"] = spec["packages"]
            proto["pip_install_options"] = spec.get(options_key, [])
            proto["installer"] = key
    if proto.get("pip_packages") or proto.get("py_module_wheels"):
        proto["interpreter"] = interpreter
        proto.setdefault("installer", "pip")
    serialized = {"runtime_env": env, "interpreter": interpreter, "python_path": list(python_path)}
    if namespace:
        serialized["namespace"] = namespace
    proto["serialized"] = json.dumps(serialized, sort_keys=True)
    return json.dumps(proto, sort_keys=True)


def from_worker_environment():
    """In a process a raylet started in a runtime env (a worker, a job's entrypoint):
    (runtime_env, interpreter or "", python_path) from SHOAL_RUNTIME_ENV; None elsewhere."""
    data = _worker_environment()
    if data is None:
        return None
    return data.get("runtime_env") or {}, data.get("interpreter") or "", data.get("python_path") or []


def worker_namespace():
    """The namespace of the job this worker serves (None when it was not told)."""
    data = _worker_environment()
    return data.get("namespace") if data else None


def _worker_environment():
    text = os.environ.get("SHOAL_RUNTIME_ENV")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
