"""The ``hub`` model source: a pinned-revision snapshot from the Hugging Face hub (or the mirror ``HF_ENDPOINT``
names), the commit it resolved to, and its files checked against the hub's own listing.

``huggingface_hub`` caches per commit and, once a file of a commit is cached, never asks the server about it
again. So on every prepare with a network this module lists the commit's files on the server afresh and compares
each local file with the digest the hub publishes for it (the sha256 of an LFS file, the git blob sha1 of a small
one): a cached file that no longer matches (a corrupt cache, or a mirror that rewrote a published commit) is
refused, naming the file and both digests. A branch or tag that now resolves to another commit than the cache
last saw is logged with both commits and recorded (``previous_commit``). The comparison is written here rather than
with ``HfApi.verify_repo_checksums`` so that the weights are not hashed twice: the prepare's own sha256s serve. With ``HF_HUB_OFFLINE=1`` the warm cache is used as it is and the
manifest says it was not checked.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class HubError(RuntimeError):
    """The hub could not provide a model, or provided files that do not match its own listing."""


def offline() -> bool:
    """Whether ``huggingface_hub`` runs offline (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    try:
        from huggingface_hub import constants

        return bool(constants.is_offline_mode())
    except (ImportError, AttributeError):  # pragma: no cover - older huggingface_hub
        return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def allow_patterns(src: dict) -> list[str] | None:
    """The files a source downloads: all, or for a GGUF entry the one GGUF file and the small metadata files."""
    return [src["gguf_file"], "*.json", "*.model", "*.txt"] if src.get("gguf_file") else None


def _cached_ref(repo_id: str, revision: str) -> str | None:
    """The commit the local cache last resolved ``revision`` to, if it is a branch or tag it has seen."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "refs" / revision
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def snapshot(name: str, src: dict) -> tuple[Path, dict[str, Any]]:
    """Download (or find in the cache) ``src['id']`` at ``src['revision']``; returns the snapshot folder and
    its provenance (endpoint, requested revision, resolved commit, and the commit the cache held before)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
    except ImportError as e:  # pragma: no cover
        raise HubError(f"model {name!r}: huggingface_hub is not installed") from e
    repo, rev, off = src["id"], src.get("revision", "main"), offline()
    before = _cached_ref(repo, rev)
    try:
        path = Path(snapshot_download(repo_id=repo, revision=rev, allow_patterns=allow_patterns(src),
                                      local_files_only=off))  # fmt: skip
    except RevisionNotFoundError:
        raise HubError(
            f"model {name!r}: revision {rev!r} does not exist in {repo} on {endpoint()}; pin an existing commit"
        ) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"model {name!r}: {repo} is not on {endpoint()} (or is private or gated: log in with `hf auth login`)"
        ) from None
    except Exception as e:  # network, auth, offline cache miss, cut-off transfers after the library's retries
        why = "HF_HUB_OFFLINE is set and the model is not in the local cache" if off else f"{type(e).__name__}: {e}"
        raise HubError(f"model {name!r}: cannot get {repo}@{rev} from the hub ({why})") from None
    commit = path.name
    info: dict[str, Any] = {"endpoint": endpoint(), "revision": rev, "commit": commit}
    if before and before != commit:
        info["previous_commit"] = before
        log.warning(
            "model %s: revision %r of %s now resolves to commit %s; this cache last saw %s. The prepared model "
            "changes: pin revision %s to keep the old one", name, rev, repo, commit, before, before,
        )  # fmt: skip
    log.info("model %s: %s@%s is commit %s (%s)", name, repo, rev, commit, path)
    return path, info


def verify(name: str, src: dict, folder: Path, commit: str, sha256s: dict[str, str] | None = None) -> dict:
    """Compare every file of the snapshot ``folder`` with the digest the hub lists for it at ``commit``;
    ``sha256s`` (relative path → sha256, already computed) saves rehashing the weights. Returns what was checked;
    raises :class:`HubError` naming each mismatching, missing or unlisted file. Offline: nothing is checked."""
    if offline():
        log.warning("model %s: HF_HUB_OFFLINE: the cached snapshot %s is used unchecked", name, commit)
        return {"checked": 0, "offline": True}
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils.sha import git_hash

    from .artifacts import sha256_file

    try:
        listing = {
            f.path: f
            for f in HfApi().list_repo_tree(src["id"], revision=commit, recursive=True)
            if isinstance(f, RepoFile)
        }
    except Exception as e:  # noqa: BLE001 - the download just worked; a failing listing is reported, not hidden
        raise HubError(
            f"model {name!r}: cannot list {src['id']}@{commit} on {endpoint()} to check the downloaded files "
            f"({type(e).__name__}: {e}); to use the cached copy unchecked, set HF_HUB_OFFLINE=1"
        ) from None
    pats = allow_patterns(src)
    wanted = {p for p in listing if pats is None or any(fnmatch.fnmatch(p, pat) for pat in pats)}
    local = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    problems = [f"{p}: listed on the hub but not in the snapshot" for p in sorted(wanted - set(local))]
    problems += [f"{p}: in the snapshot but not listed on the hub" for p in sorted(set(local) - set(listing))]
    for p in sorted(set(local) & set(listing)):
        entry = listing[p]
        if entry.lfs is not None:
            want, got, algo = entry.lfs.sha256, (sha256s or {}).get(p) or sha256_file(local[p]), "sha256"
        else:
            want, got, algo = entry.blob_id, git_hash(local[p].read_bytes()), "git blob sha1"
        if got != want:
            problems.append(f"{p}: {algo} {got} here, the hub lists {want}")
    if problems:
        raise HubError(
            f"model {name!r}: the files of {src['id']}@{commit} do not match the hub's listing of that commit:\n  "
            + "\n  ".join(problems)
            + f"\nEither the local cache is corrupt or the server changed a published commit. Remove the cached "
            f"copy ({folder.parent.parent}) and prepare again; if the mismatch persists, the server's copy changed: "
            "do not trust this revision"
        )
    return {"checked": len(set(local) & set(listing)), "offline": False}
