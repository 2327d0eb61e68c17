"""Store a model version's reference as artifacts of its LoggedModel, and read it back verified.

The reference is summarised once, when it is set: a profile, plus (when given) a seeded id-keyed
sample of items and a sample of queries for the structure and score metrics, and the noise floor
measured on sibling refits (``noise.json``, named by a version tag) and every item id the version
learned (``known_ids.npy``, for the catalogue's new-item share). A manifest of sha256
digests, itself pinned by a version tag, makes a tampered or truncated reference an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from drift_decider.errors import InputError
from drift_decider.evidence.assemble import ReferenceData
from drift_decider.evidence.noise_floor import NoiseFloor
from drift_decider.measure.profile import EmbeddingProfile
from drift_decider.tracking import tags
from drift_decider.tracking.connection import mlflow_errors
from drift_decider.tracking.registry import VersionRef

if TYPE_CHECKING:      # MLflow's types, for annotations only (mlflow loads when a call needs it)
    from mlflow import MlflowClient

PROFILE_FILE = "profile.npz"
ITEMS_FILE = "items.npz"
QUERIES_FILE = "queries.npy"
NOISE_FILE = "noise.json"
KNOWN_IDS_FILE = "known_ids.npy"
MANIFEST_FILE = "manifest.json"


def store_reference(client: MlflowClient, ref: VersionRef, reference: ReferenceData) -> str:
    """Upload the reference and point the model version at it; returns its artifact URI."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reference.profile.save(folder / PROFILE_FILE)
        if reference.item_ids is not None:
            np.savez(folder / ITEMS_FILE, ids=reference.item_ids, vectors=reference.item_vectors)
        if reference.queries is not None:
            np.save(folder / QUERIES_FILE, reference.queries)
        if reference.known_ids is not None:
            np.save(folder / KNOWN_IDS_FILE, reference.known_ids, allow_pickle=False)
        if reference.noise is not None:
            (folder / NOISE_FILE).write_text(json.dumps(reference.noise.to_dict(), sort_keys=True))
        manifest = {path.name: _sha256(path) for path in sorted(folder.iterdir())}
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, sort_keys=True))
        uri = f"models:/{ref.model_id}/{tags.REFERENCE_ARTIFACT_DIR}"
        with mlflow_errors(f"storing the reference of {ref.name} version {ref.version}"):
            if ref.tags.get(tags.REFERENCE_URI):      # replacing: no reference while the files change
                client.delete_model_version_tag(ref.name, ref.version, tags.REFERENCE_URI)
            client.log_model_artifacts(ref.model_id, tmp, artifact_path=tags.REFERENCE_ARTIFACT_DIR)
            # the URI last: a version has a reference once it is set (a failure before it leaves none,
            # and `reference set` can simply run again)
            for key, value in ((tags.REFERENCE_SHA256, _sha256(folder / MANIFEST_FILE)),
                               (tags.REFERENCE_ROWS, str(reference.profile.count)),
                               (tags.REFERENCE_DIM, str(reference.profile.dim)),
                               (tags.REFERENCE_NOISE, reference.noise.label if reference.noise else "none"),
                               (tags.REFERENCE_URI, uri)):
                client.set_model_version_tag(ref.name, ref.version, key, value)
    return uri


def load_reference(client: MlflowClient, tracking_uri: str, ref: VersionRef, workdir: Path) -> ReferenceData:
    """Download the version's reference and verify every file against the pinned manifest."""
    import mlflow.artifacts

    expected = ref.tags.get(tags.REFERENCE_SHA256)
    if not ref.tags.get(tags.REFERENCE_URI) or not expected:
        raise InputError(f"model {ref.name!r} version {ref.version} has no reference embeddings; run "
                         f"`drift-decider reference set --model {ref.name} --version {ref.version} "
                         f"--embeddings PATH` first")
    with mlflow_errors(f"downloading the reference of {ref.name} version {ref.version}"):
        logged = client.get_logged_model(ref.model_id)
        folder = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"{logged.artifact_location.rstrip('/')}/{tags.REFERENCE_ARTIFACT_DIR}",
            dst_path=str(workdir), tracking_uri=tracking_uri))
    manifest_path = folder / MANIFEST_FILE
    corrupt = f"reference of {ref.name} version {ref.version} is corrupt"
    if not manifest_path.is_file() or _sha256(manifest_path) != expected:
        raise InputError(f"{corrupt}: its manifest does not match the tag {tags.REFERENCE_SHA256}")
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest.items():
        if not (folder / name).is_file() or _sha256(folder / name) != digest:
            raise InputError(f"{corrupt}: {name} does not match its sha256 in the manifest")
    item_ids = item_vectors = queries = noise = known_ids = None
    if ITEMS_FILE in manifest:
        with np.load(folder / ITEMS_FILE, allow_pickle=False) as items:
            item_ids, item_vectors = items["ids"], items["vectors"]
    if QUERIES_FILE in manifest:
        queries = np.load(folder / QUERIES_FILE, allow_pickle=False)
    if NOISE_FILE in manifest:
        noise = NoiseFloor.from_dict(json.loads((folder / NOISE_FILE).read_text()))
    if KNOWN_IDS_FILE in manifest:
        known_ids = np.load(folder / KNOWN_IDS_FILE, allow_pickle=False)
    return ReferenceData(EmbeddingProfile.load(folder / PROFILE_FILE), item_ids, item_vectors, queries, noise,
                         known_ids)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
