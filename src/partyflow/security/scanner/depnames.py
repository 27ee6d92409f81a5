"""Dependency names: popular packages (what typosquats imitate), and the incidents we know by name and version.

The popular list is hand-kept: the most-installed PyPI projects plus the libraries ComfyUI node packs commonly
need. A name on it is trusted as a name; a name one or two edits away from it is suspicious. Being on the list says
nothing about a version: known-bad versions are the blocklist's job, known vulnerabilities the OSV database's.
"""

from __future__ import annotations

import re
from types import MappingProxyType

__all__ = ["BLOCKLIST", "BlockedRelease", "POPULAR", "canonical", "edit_distance", "typosquat_of"]

POPULAR: frozenset[str] = frozenset("""
absl-py accelerate addict aiofiles aiohttp aiosignal albumentations alembic annotated-types anthropic antlr4-python3-runtime
anyio appdirs argcomplete argon2-cffi arrow asgiref asn1crypto astroid asttokens async-timeout attrs av
babel backoff bcrypt beautifulsoup4 bitsandbytes black bleach blinker boto boto3 botocore build bs4 cachetools
certifi cffi chardet charset-normalizer chromadb click cloudpickle colorama coloredlogs comm contourpy
coverage cryptography cssselect cycler cython dataclasses-json datasets dateparser decorator deepdiff
defusedxml deprecated diffusers dill distlib distro django dnspython docker docstring-parser docutils
einops email-validator entrypoints et-xmlfile exceptiongroup executing facexlib fastapi fastjsonschema
filelock filterpy flake8 flask flatbuffers fonttools frozenlist fsspec ftfy fvcore gast gdown gitdb gitpython
google-api-core google-auth google-cloud-storage googleapis-common-protos gradio gradio-client greenlet grpcio
gunicorn h11 h5py hf-transfer httpcore httplib2 httptools httpx huggingface-hub humanfriendly hydra-core
idna imageio imageio-ffmpeg importlib-metadata importlib-resources inflect iniconfig insightface iopath
ipykernel ipython isodate isort itsdangerous jax jaxlib jedi jinja2 jmespath joblib jsonpatch jsonpointer
jsonschema jupyter-client jupyter-core kiwisolver kornia langchain langchain-core langchain-community
langchain-openai langsmith lark lazy-loader libclang librosa lightning litellm llvmlite lmdb loguru lxml
markdown markdown-it-py markupsafe matplotlib matplotlib-inline mccabe mdurl mediapipe more-itertools
mpmath msgpack multidict multiprocess mypy mypy-extensions nest-asyncio networkx nltk numba numexpr numpy
nvidia-ml-py oauthlib omegaconf onnx onnxruntime onnxruntime-gpu open-clip-torch openai opencv-contrib-python
opencv-python opencv-python-headless openpyxl opt-einsum orjson packaging pandas paramiko parso pathspec
peft pexpect piexif pillow pip pkginfo platformdirs playwright pluggy ply portalocker prometheus-client
prompt-toolkit propcache protobuf psutil psycopg2 psycopg2-binary ptyprocess pure-eval py pyarrow pyasn1
pyasn1-modules pycocotools pycodestyle pycparser pycryptodome pydantic pydantic-core pydantic-settings
pydub pyflakes pygments pyjwt pylint pymatting pymysql pynacl pyopenssl pyparsing pyperclip pyproject-hooks
pytest pytest-cov python-dateutil python-dotenv python-multipart pytorch-lightning pytz pywavelets pyyaml pyzmq
qrcode rapidfuzz ray redis regex rembg requests requests-oauthlib requests-toolbelt rich rpds-py rsa ruamel-yaml
ruff s3transfer safetensors scapy scikit-image scikit-learn scipy seaborn segment-anything semver
sentencepiece sentry-sdk setuptools shapely shellingham simplejson six smmap sniffio sortedcontainers
soundfile soupsieve spandrel sqlalchemy sqlparse stack-data starlette sympy tabulate tenacity tensorboard
tensorflow termcolor threadpoolctl tifffile tiktoken timm tokenizers toml tomli tomlkit toolz torch
torchaudio torchsde torchvision torchx tornado tqdm traitlets transformers trimesh triton typer
types-requests typing-extensions typing-inspect tzdata tzlocal ujson ultralytics uritemplate urllib3 uv uvicorn
uvloop virtualenv watchdog watchfiles wcwidth webencodings websocket-client websockets werkzeug wheel wrapt
xformers xxhash yapf yarl zipp zstandard gguf llama-cpp-python comfyui-frontend-package color-matcher
simpleeval numpy-quaternion kornia-rs accelerate transparent-background clip-interrogator fairscale
""".split())

_SEP = re.compile(r"[-_.]+")


def canonical(name: str) -> str:
    """PEP 503 normalisation: the form under which names compare."""
    return _SEP.sub("-", name).lower()


def edit_distance(a: str, b: str, limit: int = 3) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, stopping early past `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        prev2, prev = prev, row
    return prev[-1]


def typosquat_of(name: str) -> str | None:
    """The popular package `name` imitates, or None. Short names are too dense to judge (every 3-letter name is one
    edit from another), so only names of five characters or more are checked."""
    wanted = canonical(name)
    if wanted in POPULAR or len(wanted) < 5:
        return None
    squashed = wanted.replace("-", "")
    for popular in sorted(POPULAR):
        if len(popular) < 5:
            continue
        if squashed == popular.replace("-", ""):
            return popular
        allowed = 2 if len(popular) >= 10 else 1
        if edit_distance(wanted, popular, allowed) <= allowed:
            return popular
    return None


class BlockedRelease:
    """Releases of a real package that were published malicious (a compromised maintainer account or CI)."""

    def __init__(self, versions: tuple[str, ...], incident: str) -> None:
        self.versions = versions
        self.incident = incident


BLOCKLIST: MappingProxyType[str, BlockedRelease] = MappingProxyType({
    "ultralytics": BlockedRelease(("8.3.41", "8.3.42"), "ultralytics 8.3.41-8.3.42 (2024) shipped a crypto-miner"),
    "litellm": BlockedRelease(("1.82.7", "1.82.8"), "litellm 1.82.7-1.82.8 (2026) stole SSH keys, environment "
                                                     "variables and cloud credentials; 1.82.8 added a .pth file"),
})

TROJAN_TARGETS: frozenset[str] = frozenset({"openai", "anthropic", "requests", "torch", "transformers", "numpy",
                                            "pillow", "httpx", "litellm", "ultralytics"})
"""Names whose trojaned wheels have been served from outside PyPI (the ComfyUI_LLMVISION incident: openai and
anthropic wheels from a file host). A direct URL for one of these is treated as an attack, not a convenience."""
