"""A small HTTP client: the key comes from the environment or the pack's config file, never from the workflow."""

import json
import os
from pathlib import Path

import requests

API_BASE = "https://api.acme-vision.invalid/v1"
CONFIG_FILE = Path(__file__).parent / "config.json"


class AcmeVisionError(RuntimeError):
    pass


class AcmeVisionClient:
    def __init__(self, api_key, base_url=API_BASE, timeout=60):
        if not api_key:
            raise AcmeVisionError("set ACME_VISION_API_KEY or put api_key in config.json")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {api_key}", "User-Agent": "acme-vision-comfy/1.2"})

    @classmethod
    def from_environment(cls):
        key = os.environ.get("ACME_VISION_API_KEY")
        base = os.environ.get("ACME_VISION_BASE_URL", API_BASE)
        if not key and CONFIG_FILE.is_file():
            key = json.loads(CONFIG_FILE.read_text(encoding="utf-8")).get("api_key")
        return cls(key, base_url=base)

    def describe(self, image_url, detail="low"):
        response = self.session.post(f"{self.base_url}/describe", json={"image_url": image_url, "detail": detail},
                                     timeout=self.timeout)
        if response.status_code == 401:
            raise AcmeVisionError("the API key was rejected")
        response.raise_for_status()
        return response.json()["description"]


def quick_describe(image_url):
    """One-off call without a session, as the README's example shows."""
    key = os.getenv("ACME_VISION_API_KEY")
    response = requests.post(f"{API_BASE}/describe", headers={"Authorization": f"Bearer {key}"},
                             json={"image_url": image_url}, timeout=30)
    response.raise_for_status()
    return response.json()["description"]
