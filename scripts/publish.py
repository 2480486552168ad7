"""Publish the prepared demo (indexes/ and checkpoints/, as prepare_demo.py writes them) to a Hugging Face Hub model
repo, for a Space to fetch at start (LANDMARK_ASSETS=OWNER/NAME, or app.py --assets)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import config  # noqa: E402
from search.assets import CHECKPOINTS, INDEXES, PUBLISHED, AssetRepo  # noqa: E402
from search.cli import add_index_dir, run  # noqa: E402
from search.demo import loadable_indexes  # noqa: E402
from search.errors import LandmarkError  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repo", required=True, help="OWNER/NAME of the Hub model repo (created if missing)")
    add_index_dir(p)
    p.add_argument("--checkpoint-dir", type=Path, default=config.CHECKPOINT_DIR)
    p.add_argument("--private", action="store_true", help="create the repo private (the Space then needs HF_TOKEN)")
    p.add_argument("--endpoint", default=None, help="the Hub's URL (default: huggingface.co, or HF_ENDPOINT)")
    a = p.parse_args()
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
            patterns = [pat.split("/", 1)[1] for pat in PUBLISHED if pat.startswith(name + "/")]
            info = api.upload_folder(repo_id=repo.repo_id, repo_type="model", folder_path=folder, path_in_repo=name,
                                     allow_patterns=patterns, commit_message=f"Landmark Lens: {name}/ from {folder}")
            commits.append(info.oid)
    except HfHubHTTPError as exc:
        raise LandmarkError(f"Publishing to {repo.repo_id} failed: {exc} (log in with `hf auth login`, or set "
                            "HF_TOKEN).") from exc
    print(f"published {a.index_dir} and {a.checkpoint_dir} to {repo.repo_id} at commit {commits[-1]}")
    print(f"set the Space variable {config.ASSETS_ENV}={repo.repo_id}@{commits[-1]} (or {repo.repo_id} for main)")
    return 0


if __name__ == "__main__":
    run(main)
