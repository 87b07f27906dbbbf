"""Kaggle credentials as the CLI reads them: a refusal in one line when there are none, the owner of an API
token."""

import os
import re
from pathlib import Path

import build
from tools.kaggle.cli import DeliveryError, kaggle


def access_token() -> bool:
    """Whether the CLI has an API token: KAGGLE_API_TOKEN, or the access_token file it reads."""
    return bool(os.environ.get("KAGGLE_API_TOKEN")) or (Path.home() / ".kaggle" / "access_token").is_file()


def require_credentials() -> None:
    """Refuse, in one line, when the CLI has no credentials: an API token (KAGGLE_API_TOKEN or access_token),
    KAGGLE_USERNAME + KAGGLE_KEY, or kaggle.json. With a token alone, the owner of what is pushed comes from the API
    (the username the token belongs to), unless a kernel's `owner` setting names it."""
    if access_token():
        if not (os.environ.get("KAGGLE_USERNAME") or build.kaggle_json().get("username")):
            os.environ["KAGGLE_USERNAME"] = token_owner()
        return
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return
    if (build.kaggle_config_dir() / "kaggle.json").is_file():
        return
    raise DeliveryError(
        "no Kaggle credentials: set KAGGLE_API_TOKEN (kaggle.com > Settings > API > Generate New Token) or save it "
        "as ~/.kaggle/access_token; or set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json "
        f"in {build.kaggle_config_dir()}"
    )


def token_owner() -> str:
    """The username the CLI's API token belongs to (`kaggle config view`, after the CLI introspected the token)."""
    found = re.search(r"^- username: (\S+)", kaggle("config", "view"), re.M)
    if not found:
        raise DeliveryError("Kaggle did not accept the API token (no username for it); generate a new one")
    return found[1]
