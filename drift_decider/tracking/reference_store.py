"""Store a model version's reference profile as an artifact of its LoggedModel, and read it back.

The reference is summarised once, when it is set; every later check downloads the summary, not the
original vectors.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from drift_decider.errors import InputError
from drift_decider.profile import EmbeddingProfile
from drift_decider.tracking import tags
from drift_decider.tracking.connection import mlflow_errors
from drift_decider.tracking.registry import VersionRef

PROFILE_FILE = "profile.npz"


def store_reference(client, ref: VersionRef, profile: EmbeddingProfile) -> str:
    """Upload ``profile`` and point the model version at it; returns the artifact URI."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PROFILE_FILE
        profile.save(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with mlflow_errors(f"storing the reference of {ref.name} version {ref.version}"):
            client.log_model_artifacts(ref.model_id, tmp, artifact_path=tags.REFERENCE_ARTIFACT_DIR)
            uri = f"models:/{ref.model_id}/{tags.REFERENCE_ARTIFACT_DIR}/{PROFILE_FILE}"
            for key, value in ((tags.REFERENCE_SHA256, digest), (tags.REFERENCE_ROWS, str(profile.count)),
                               (tags.REFERENCE_DIM, str(profile.dim)), (tags.REFERENCE_URI, uri)):
                client.set_model_version_tag(ref.name, ref.version, key, value)
    return uri


def load_reference(client, tracking_uri: str, ref: VersionRef, workdir: Path) -> EmbeddingProfile:
    """Download and verify the version's reference profile (sha256 must match the tag)."""
    expected = ref.tags.get(tags.REFERENCE_SHA256)
    if not ref.tags.get(tags.REFERENCE_URI) or not expected:
        raise InputError(f"model {ref.name!r} version {ref.version} has no reference embeddings; run "
                         f"`drift-decider reference set --model {ref.name} --version {ref.version} "
                         f"--embeddings PATH` first")
    with mlflow_errors(f"downloading the reference of {ref.name} version {ref.version}"):
        import mlflow.artifacts

        logged = client.get_logged_model(ref.model_id)
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{logged.artifact_location.rstrip('/')}/{tags.REFERENCE_ARTIFACT_DIR}/{PROFILE_FILE}",
            dst_path=str(workdir), tracking_uri=tracking_uri)
    actual = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if actual != expected:
        raise InputError(f"reference of {ref.name} version {ref.version} is corrupt: sha256 {actual} "
                         f"does not match the tag {expected}")
    return EmbeddingProfile.load(path)
