"""Where runs keep their checkpoints and results: a local directory, or any filesystem pyarrow
serves (s3:// first of all). `fs` None means the local filesystem through os and shutil, so
that runs on local paths never import pyarrow."""
import itertools
import os
import shutil
import urllib.parse
import uuid


class StorageError(OSError):
    """A storage path that cannot be read or written."""


def resolve(storage_path, storage_filesystem=None):
    """(fs, root) for a RunConfig's storage_path and storage_filesystem."""
    if storage_filesystem is not None:
        try:
            import pyarrow.fs as pafs
        except ImportError as e:
            raise ImportError("RunConfig(storage_filesystem=...) needs pyarrow (pip install pyarrow)") from e
        if not isinstance(storage_filesystem, pafs.FileSystem):
            raise TypeError("RunConfig(storage_filesystem=...) must be a pyarrow.fs.FileSystem, got "
                            f"{type(storage_filesystem).__name__}")
        if isinstance(storage_filesystem, pafs.LocalFileSystem):
            return None, os.path.abspath(os.path.expanduser(storage_path))
        return storage_filesystem, storage_path.rstrip("/")
    parsed = urllib.parse.urlparse(storage_path)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else storage_path
        return None, os.path.abspath(os.path.expanduser(path))
    try:
        import pyarrow.fs as pafs
    except ImportError as e:
        raise ImportError(f"storage_path {storage_path!r} needs pyarrow for its filesystem "
                          "(pip install pyarrow)") from e
    query = urllib.parse.parse_qs(parsed.query)
    if parsed.scheme in ("s3", "s3a") and _have_s3fs():
        return _fsspec_s3(parsed, query), (parsed.netloc + parsed.path).rstrip("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if parsed.scheme == "s3" and "endpoint_override" not in query and endpoint:
        e = urllib.parse.urlparse(endpoint if "://" in endpoint else "https://" + endpoint)
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        fs = pafs.S3FileSystem(endpoint_override=e.netloc, scheme=e.scheme, region=region)
        return fs, (parsed.netloc + parsed.path).rstrip("/")
    try:
        fs, path = pafs.FileSystem.from_uri(storage_path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad URIs
        raise ValueError(f"storage_path {storage_path!r}: {e}") from e
    return fs, path.rstrip("/")


def _have_s3fs():
    import importlib.util
    return importlib.util.find_spec("s3fs") is not None


def _fsspec_s3(parsed, query):
    """s3:// through fsspec's s3fs (wrapped as a pyarrow filesystem), which S3-compatible
    servers serve more reliably than pyarrow's own client. The endpoint comes from the URI's
    `endpoint_override` (with `scheme`), else botocore's $AWS_ENDPOINT_URL_S3 /
    $AWS_ENDPOINT_URL; credentials from the usual AWS variables of each node."""
    import pyarrow.fs as pafs
    import s3fs
    kwargs = {}
    if "endpoint_override" in query:
        scheme = query.get("scheme", ["https"])[0]
        kwargs["client_kwargs"] = {"endpoint_url": f"{scheme}://{query['endpoint_override'][0]}"}
    return pafs.PyFileSystem(pafs.FSSpecHandler(s3fs.S3FileSystem(**kwargs)))


def uri(fs, path):
    """How a path is shown to users: the local path, or scheme://path."""
    if fs is None:
        return path
    scheme = "s3" if fs.type_name == "s3" or "'s3'" in fs.type_name else fs.type_name
    return f"{scheme}://{path}"


def join(*parts):
    return "/".join(p.rstrip("/") for p in parts if p)


def makedirs(fs, path):
    if fs is None:
        os.makedirs(path, exist_ok=True)
    else:
        fs.create_dir(path, recursive=True)


def claim_fresh_dir(fs, root, name):
    """Creates and answers the first of `name`, `name_2`, `name_3`, ... that is not yet a directory
    under `root`. On a local disk the claim is atomic (mkdir), so runs that start in the same second
    in different processes, and so get the same timestamped default name, get a directory each."""
    for n in itertools.count(1):
        candidate = name if n == 1 else f"{name}_{n}"
        path = join(root, candidate)
        if fs is None:
            os.makedirs(root, exist_ok=True)
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
            return candidate
        if not exists(fs, path):
            fs.create_dir(path, recursive=True)
            return candidate


def exists(fs, path):
    if fs is None:
        return os.path.exists(path)
    import pyarrow.fs as pafs
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def list_dirs(fs, path):
    """The names of the directories directly under `path` ([] when it does not exist)."""
    if fs is None:
        try:
            return sorted(e.name for e in os.scandir(path) if e.is_dir())
        except FileNotFoundError:
            return []
    import pyarrow.fs as pafs
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def delete_dir(fs, path):
    if fs is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    if exists(fs, path):
        fs.delete_dir(path)


def upload_dir(local_dir, fs, path):
    """Copies the contents of `local_dir` into `path` (created; files already there are
    replaced, others kept, so that several workers can add to one checkpoint)."""
    if fs is None:
        if os.path.abspath(local_dir) != os.path.abspath(path):
            shutil.copytree(local_dir, path, dirs_exist_ok=True)
        return
    import pyarrow.fs as pafs
    fs.create_dir(path, recursive=True)
    pafs.copy_files(local_dir, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_dir(fs, path, local_dir):
    if not exists(fs, path):
        raise StorageError(f"checkpoint directory {uri(fs, path)} does not exist")
    if fs is None:
        if os.path.abspath(local_dir) != os.path.abspath(path):
            shutil.copytree(path, local_dir, dirs_exist_ok=True)
        return
    import pyarrow.fs as pafs
    os.makedirs(local_dir, exist_ok=True)
    pafs.copy_files(path, local_dir, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


def write_text(fs, path, text):
    if fs is None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        return
    with fs.open_output_stream(path) as f:
        f.write(text.encode())


def read_text(fs, path):
    if fs is None:
        with open(path) as f:
            return f.read()
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def check_writable(fs, path):
    """Creates `path` and writes and removes a probe file in it; StorageError naming the path
    and the cause when it cannot."""
    probe = join(path, f".shoal_write_probe_{os.getpid()}_{uuid.uuid4().hex[:8]}")  # runs may share `path`
    try:
        makedirs(fs, path)
        write_text(fs, probe, "ok")
        if fs is None:
            os.remove(probe)
        else:
            fs.delete_file(probe)
    except Exception as e:  # noqa: BLE001 - every filesystem error means the same here
        raise StorageError(f"storage path {uri(fs, path)} cannot be written: {e}") from e
