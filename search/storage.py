"""Where Ray keeps a search's trials (`--storage-path`): the --output folder by default, else a
shared directory or a cloud URI (s3://, gs://, abfss://, anything pyarrow.fs understands). On a
multi-node cluster a plain local path is checked first: every alive node must read a marker file
the driver wrote there, since trials on any node checkpoint into it. A write that fails for want
of space or permission becomes one line (`write_failure`).
"""

import errno
import shutil
import uuid
from pathlib import Path

import pyarrow.fs
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from trainables.basics import UserError, is_uri

CHECK_TIMEOUT_S = 120  # a node task waits for a worker process to start; slow on a busy machine


def resolve(storage_path: str | None, output: Path) -> str:
    """The storage location as a string: an absolute local path, or the URI unchanged."""
    if not storage_path:
        return str(output)
    if is_uri(storage_path):
        try:
            pyarrow.fs.FileSystem.from_uri(storage_path)
        except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError) as e:
            raise UserError(f"--storage-path {storage_path}: {str(e).splitlines()[0]}") from None
        return storage_path.rstrip("/")
    return str(Path(storage_path).expanduser().resolve())


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names]) if is_uri(base) else str(Path(base, *names))


def _filesystem(path: str) -> tuple:
    return pyarrow.fs.FileSystem.from_uri(path) if is_uri(path) else (pyarrow.fs.LocalFileSystem(), path)


def _infos(path: str, listing: bool) -> list:
    fs, inner = _filesystem(path)
    try:
        return fs.get_file_info(pyarrow.fs.FileSelector(inner, allow_not_found=True) if listing else [inner])
    except OSError as e:  # no credentials, no network, no such bucket
        raise UserError(f"cannot reach {path}: {str(e).splitlines()[0]}") from None


def is_dir(path: str) -> bool:
    return _infos(path, listing=False)[0].type == pyarrow.fs.FileType.Directory


def list_dirs(path: str) -> set[str]:
    """The names of the folders directly inside `path` (none when it does not exist)."""
    return {info.base_name for info in _infos(path, listing=True) if info.type == pyarrow.fs.FileType.Directory}


def remove_dir(path: str) -> None:
    if not is_uri(path):
        shutil.rmtree(path, ignore_errors=True)
    elif is_dir(path):
        fs, inner = _filesystem(path)
        fs.delete_dir(inner)


@ray.remote(num_cpus=0)  # a check, not work: it must run even on a node whose CPUs are all busy
def _reads(marker: str, token: str) -> bool:
    try:
        return Path(marker).read_text() == token
    except OSError:
        return False


def check_visible(storage: str, flag: str) -> None:
    """On a cluster of more than one alive node, refuse a local storage path some node cannot read.
    A URI is left to pyarrow and the cloud's own credentials; a single node needs no check."""
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if is_uri(storage) or len(nodes) < 2:
        return
    token = uuid.uuid4().hex
    marker = Path(storage) / f".search-visible-{token}"
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(token)
    except OSError as e:
        raise UserError(f"cannot write to {flag} {storage}: {e.strerror or e}") from None
    try:
        checks = {
            node["NodeID"]: _reads.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(str(marker), token)
            for node in nodes
        }
        addresses = {node["NodeID"]: node["NodeManagerAddress"] for node in nodes}
        for node_id, check in checks.items():
            if not ray.get(check, timeout=CHECK_TIMEOUT_S):
                raise UserError(
                    f"{flag} {storage} is not visible from node {node_id[:12]} ({addresses[node_id]}); "
                    f"give a shared directory or a cloud URI such as s3://bucket/path"
                )
    finally:
        marker.unlink(missing_ok=True)


# a write that failed for want of space or permission: the user can fix it and resume
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def cannot_write(error: OSError) -> str:
    return f"cannot write {error.filename or 'the output folder'}: {error.strerror or error}"


def write_failure(error: BaseException) -> str | None:
    """The line for a write that failed for want of space or permission, anywhere in `error`'s chain."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in STORAGE_ERRORS:
            return cannot_write(error)
        error = error.__cause__ or error.__context__
    return None
