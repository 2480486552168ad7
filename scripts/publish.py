"""Publish the prepared demo (indexes/ and checkpoints/, as prepare_demo.py writes them) to a Hugging Face Hub model
repo, for a Space to fetch at start (LANDMARK_ASSETS=OWNER/NAME, or app.py --assets); with --space, also create a
ZeroGPU Space (if missing) that fetches exactly that commit, and upload this repository's code to it."""

import argparse
import subprocess
from pathlib import Path

from search import config
from search.errors import LandmarkError
from search.pipeline.assets import CHECKPOINTS, INDEXES, AssetRepo, published
from search.pipeline.cli import add_encoders_file, add_index_dir, run, use_encoders_of
from search.pipeline.prepare import loadable_indexes

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    use_encoders_of(argv)
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repo", required=True, help="OWNER/NAME of the Hub model repo (created if missing)")
    add_index_dir(p)
    add_encoders_file(p)
    p.add_argument("--checkpoint-dir", type=Path, default=config.CHECKPOINT_DIR)
    p.add_argument("--private", action="store_true", help="create the repo private (the Space then needs HF_TOKEN)")
    p.add_argument("--endpoint", default=None, help="the Hub's URL (default: huggingface.co, or HF_ENDPOINT)")
    p.add_argument("--space", default=None, metavar="OWNER/NAME",
                   help="also create this Space on ZeroGPU (if missing), point it at the published commit and upload "
                        "the code (the files git tracks)")
    a = p.parse_args(argv)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    repo = AssetRepo.parse(a.repo)
    if len(loadable_indexes(a.index_dir)) == 0:
        raise LandmarkError(f"{a.index_dir} holds no index that loads: run scripts/prepare_demo.py first.")
    api = HfApi(endpoint=a.endpoint)
    try:
        api.create_repo(repo.repo_id, repo_type="model", private=a.private, exist_ok=True)
        commits = []
        for folder, name in ((a.index_dir, INDEXES), (a.checkpoint_dir, CHECKPOINTS)):
            patterns = [pat.split("/", 1)[1] for pat in published() if pat.startswith(name + "/")]
            info = api.upload_folder(repo_id=repo.repo_id, repo_type="model", folder_path=folder, path_in_repo=name,
                                     allow_patterns=patterns, commit_message=f"Landmark Lens: {name}/ from {folder}")
            commits.append(info.oid)
    except HfHubHTTPError as exc:
        raise LandmarkError(f"Publishing to {repo.repo_id} failed: {exc} (log in with `hf auth login`, or set "
                            "HF_TOKEN).") from exc
    print(f"published {a.index_dir} and {a.checkpoint_dir} to {repo.repo_id} at commit {commits[-1]}")
    assets = f"{repo.repo_id}@{commits[-1]}"
    if a.space is None:
        print(f"set the Space variable {config.ASSETS_ENV}={assets} (or {repo.repo_id} for main)")
        return 0
    space = AssetRepo.parse(a.space).repo_id
    try:
        api.create_repo(space, repo_type="space", space_sdk="gradio", space_hardware="zero-a10g", exist_ok=True)
        api.add_space_variable(space, config.ASSETS_ENV, assets)
        info = api.upload_folder(repo_id=space, repo_type="space", folder_path=ROOT, allow_patterns=tracked_files(),
                                 commit_message="Landmark Lens: the app's code")
    except HfHubHTTPError as exc:
        raise LandmarkError(f"Publishing the Space {space} failed: {exc} (check that your account or organisation "
                            "may host ZeroGPU Spaces).") from exc
    print(f"uploaded the code to the Space {space} at commit {info.oid}, on ZeroGPU, with {config.ASSETS_ENV}={assets}")
    if a.private:
        print(f"the assets repo is private: add your token as the Space secret HF_TOKEN ({space} > Settings)")
    return 0


def tracked_files() -> list[str]:
    """The files of this repository's code, as git tracks them (no venv, data, indexes or checkpoints)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LandmarkError(f"{ROOT} is not a git checkout, so which files are the code is unknown: clone the "
                            "repository and publish from the clone.") from exc
    return [f for f in out.decode().split("\0") if f]


if __name__ == "__main__":
    run(main)
