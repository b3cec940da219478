"""Submit and manage jobs on a Shoal cluster through its dashboard's jobs REST API.

The same API as Ray's ``ray.job_submission.JobSubmissionClient`` (Shoal's dashboard speaks
Ray's jobs API), in pure Python: only the standard library, no native code.

    from shoal.job_submission import JobSubmissionClient, JobStatus
    client = JobSubmissionClient()            # the dashboard of the cluster started on this machine
    job_id = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": "./proj"})
    for chunk in client.tail_job_logs(job_id):
        print(chunk, end="")

Every call blocks on one HTTP request (``tail_job_logs`` polls until the job ends) and raises
``RuntimeError`` with the dashboard's message when it answers an error.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import ssl
import time
import urllib.error
import urllib.request
import zipfile
from typing import Any, Dict, Iterator, List, Optional, Union

__all__ = ["JobStatus", "JobSubmissionClient"]

_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class JobStatus(str):
    """A job's status: one of the class attributes below (plain strings)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @staticmethod
    def is_terminal(status: str) -> bool:
        return status in _TERMINAL


def _temp_root() -> str:
    return os.environ.get("SHOAL_TMPDIR") or "/tmp/shoal"


def _is_dashboard_url(value: str) -> bool:
    return value.startswith("http://") or value.startswith("https://")


def _local_dashboard() -> Optional[Dict[str, Any]]:
    """dashboard.ready.json of the cluster last started on this machine, if it runs."""
    root = _temp_root()
    try:
        with open(os.path.join(root, "shoal_current_cluster")) as f:
            gcs = f.read().strip()
    except OSError:
        return None
    for path in glob.glob(os.path.join(root, "session_*", "dashboard.ready.json")):
        if os.path.islink(os.path.dirname(path)):
            continue
        try:
            with open(path) as f:
                ready = json.load(f)
            if ready.get("gcs_address") == gcs:
                os.kill(int(ready["pid"]), 0)
                return ready
        except (OSError, ValueError, KeyError):
            continue
    return None


class JobSubmissionClient:
    """A client of a Shoal dashboard's jobs API.

    address: ``http://HOST:PORT`` or ``https://HOST:PORT``; default: $SHOAL_ADDRESS or
    $RAY_ADDRESS when they hold such a URL, else the dashboard of the cluster started on this
    machine.
    headers: extra HTTP headers (Ray's way to pass ``{"Authorization": "Bearer TOKEN"}``).
    token: the dashboard's token; default: $SHOAL_AUTH_TOKEN, else the local cluster's token
    file when ``address`` is that cluster's dashboard.
    verify: for an https:// dashboard, as in Ray: the path of the CA file (PEM) its certificate
    must verify against, or True for $SHOAL_DASHBOARD_TLS_CA, else the system's CAs. The
    certificate must also name the address's host. False is refused: Shoal never talks to an
    https:// dashboard it has not verified.
    """

    def __init__(self, address: Optional[str] = None, headers: Optional[Dict[str, str]] = None,
                 token: Optional[str] = None, timeout: float = 60.0, verify: Union[str, bool] = True):
        local = _local_dashboard()
        if address is None:
            for var in ("SHOAL_ADDRESS", "RAY_ADDRESS"):
                if _is_dashboard_url(os.environ.get(var, "")):
                    address = os.environ[var]
                    break
        if address is None:
            if local is None:
                raise RuntimeError("no Shoal dashboard found on this machine: pass address='http://HOST:8265' "
                                   "or start a cluster with `shoal start --head`")
            address = local["url"]
        if "://" not in address:
            address = "http://" + address
        self._address = address.rstrip("/")
        self._timeout = timeout
        self._ssl_context = self._tls_context(verify) if self._address.startswith("https://") else None
        self._headers = dict(headers or {})
        token = token or os.environ.get("SHOAL_AUTH_TOKEN")
        if token is None and local is not None and self._address == local["url"] and local.get("token_file"):
            try:
                with open(local["token_file"]) as f:
                    token = f.read().strip()
            except OSError:
                token = None
        if token and not any(k.lower() == "authorization" for k in self._headers):
            self._headers["Authorization"] = f"Bearer {token}"
        self._request("GET", "/api/version")  # fails early on a wrong address or token

    # -- HTTP ---------------------------------------------------------------------------------

    @staticmethod
    def _tls_context(verify: Union[str, bool]) -> ssl.SSLContext:
        if verify is False:
            raise ValueError("verify=False: Shoal does not talk to an https:// dashboard without checking its "
                             "certificate; pass verify='/path/to/ca.pem' (the CA that signed it)")
        cafile = verify if isinstance(verify, str) else os.environ.get("SHOAL_DASHBOARD_TLS_CA") or None
        try:
            context = ssl.create_default_context(cafile=cafile)  # verifies the certificate and the host name
        except (OSError, ssl.SSLError) as e:
            raise ValueError(f"cannot load the dashboard's CA from {cafile!r}: {e}") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _request(self, method: str, path: str, body: Any = None, data: Optional[bytes] = None,
                 content_type: str = "application/json", allow_404: bool = False) -> Any:
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self._address + path, data=data, method=method)
        for key, value in self._headers.items():
            request.add_header(key, value)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._ssl_context) as response:
                text = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as e:
            if allow_404 and e.code == 404:
                return None
            text = e.read().decode("utf-8", errors="replace")
            try:
                message = json.loads(text).get("message", text)
            except (ValueError, AttributeError):
                message = text
            raise RuntimeError(f"the dashboard at {self._address} answered {e.code}: {message}") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, ssl.SSLCertVerificationError):
                raise RuntimeError(f"the dashboard at {self._address} is not trusted: {e.reason.verify_message} "
                                   "(pass verify='/path/to/ca.pem', the CA that signed its certificate)") from None
            raise RuntimeError(f"no dashboard answers at {self._address}: {e.reason}") from None
        return json.loads(text) if text else None

    # -- packages -----------------------------------------------------------------------------

    def _upload_working_dir(self, directory: str) -> str:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for parent, dirs, files in os.walk(directory):
                dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__"))
                for name in sorted(files):
                    path = os.path.join(parent, name)
                    info = zipfile.ZipInfo(os.path.relpath(path, directory), date_time=(1980, 1, 1, 0, 0, 0))
                    info.external_attr = (os.stat(path).st_mode & 0o777) << 16
                    with open(path, "rb") as f:
                        archive.writestr(info, f.read(), zipfile.ZIP_DEFLATED)
        payload = buffer.getvalue()
        name = f"_shoal_pkg_{hashlib.sha1(payload).hexdigest()[:16]}.zip"
        path = f"/api/packages/gcs/{name}"
        if self._request("GET", path, allow_404=True) is None:
            self._request("PUT", path, data=payload, content_type="application/zip")
        return f"gcs://{name}"

    # -- jobs ---------------------------------------------------------------------------------

    def submit_job(self, *, entrypoint: str, submission_id: Optional[str] = None,
                   runtime_env: Optional[Dict[str, Any]] = None, metadata: Optional[Dict[str, str]] = None,
                   entrypoint_num_cpus: Optional[float] = None, entrypoint_num_gpus: Optional[float] = None,
                   entrypoint_memory: Optional[int] = None,
                   entrypoint_resources: Optional[Dict[str, float]] = None) -> str:
        """Submits a job; answers its submission id. A local ``runtime_env["working_dir"]`` is
        zipped and uploaded first."""
        runtime_env = dict(runtime_env or {})
        working_dir = runtime_env.get("working_dir")
        if isinstance(working_dir, str) and "://" not in working_dir:
            if not os.path.isdir(working_dir):
                raise ValueError(f"working_dir {working_dir!r} is not a directory")
            runtime_env["working_dir"] = self._upload_working_dir(working_dir)
        body: Dict[str, Any] = {"entrypoint": entrypoint, "runtime_env": runtime_env}
        for key, value in (("submission_id", submission_id), ("metadata", metadata),
                           ("entrypoint_num_cpus", entrypoint_num_cpus), ("entrypoint_num_gpus", entrypoint_num_gpus),
                           ("entrypoint_memory", entrypoint_memory), ("entrypoint_resources", entrypoint_resources)):
            if value is not None:
                body[key] = value
        return self._request("POST", "/api/jobs/", body)["submission_id"]

    def get_job_info(self, job_id: str) -> Dict[str, Any]:
        """The job's details (Ray's JobDetails fields) as a dict."""
        return self._request("GET", f"/api/jobs/{job_id}")

    def get_job_status(self, job_id: str) -> str:
        return self.get_job_info(job_id)["status"]

    def list_jobs(self) -> List[Dict[str, Any]]:
        """Every job's details, newest first."""
        return self._request("GET", "/api/jobs/")

    def get_job_logs(self, job_id: str) -> str:
        return self._request("GET", f"/api/jobs/{job_id}/logs")["logs"]

    def tail_job_logs(self, job_id: str, poll_interval: float = 0.5) -> Iterator[str]:
        """Yields the job's log as it grows, until the job has ended (polls the dashboard)."""
        offset = 0
        while True:
            status = self.get_job_status(job_id)
            reply = self._request("GET", f"/api/jobs/{job_id}/logs?offset={offset}")
            if reply["logs"]:
                yield reply["logs"]
            offset = reply["offset"]
            if status in _TERMINAL:
                return
            time.sleep(poll_interval)

    def stop_job(self, job_id: str) -> bool:
        """Asks the job to stop; True when it was running or pending."""
        return self._request("POST", f"/api/jobs/{job_id}/stop")["stopped"]

    def delete_job(self, job_id: str) -> bool:
        """Forgets an ended job and its logs."""
        return self._request("DELETE", f"/api/jobs/{job_id}")["deleted"]
