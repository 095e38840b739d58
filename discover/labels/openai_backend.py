"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama,
llama.cpp server, ...) through the ``openai`` package.

The API key is read from the environment variable named by ``api_key_env`` at request time and
goes nowhere else: not into the config, the output document, logs or error messages (any text
we re-raise is scrubbed of it, and the client's exception is not chained, so a traceback cannot
show a server's echo of it either).
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from discover.errors import ConfigError, LabelGenerationError
from discover.labels.base import LabelGenerator
from discover.labels.registry import register_label_generator

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o"  # the paper's ChatGPT-4o
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
_REMOTE_PREFIXES = ("http://", "https://", "data:")


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` masked."""
    return text.replace(secret, "***") if secret else text


@register_label_generator("openai")
class OpenAILabels(LabelGenerator):
    """Chat completions with exponential backoff on 429/5xx, timeouts and dropped connections
    (the ``openai`` client's own retry loop, ``max_retries_http`` attempts after the first)."""

    def __init__(self, cfg: Mapping[str, Any] | None = None):
        super().__init__(cfg)
        self.api_key_env = str(self.cfg.get("api_key_env") or DEFAULT_API_KEY_ENV)
        self.base_url = str(self.cfg.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.temperature = self.cfg.get("temperature", 0)
        self.timeout_s = float(self.cfg.get("timeout_s", 60))
        self.max_retries_http = int(self.cfg.get("max_retries_http", 4))
        self.image = self.cfg.get("image")
        if self.max_retries_http < 0:
            raise ConfigError("config key semantics.labels.openai.max_retries_http must be >= 0")

    @property
    def model(self) -> str:
        return str(self.cfg.get("model") or DEFAULT_MODEL)

    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,  # the variable's name, never its value
            "temperature": self.temperature,
            "timeout_s": self.timeout_s,
            "max_retries_http": self.max_retries_http,
        }
        if self.image:
            params["image"] = str(self.image)
            if not str(self.image).startswith(_REMOTE_PREFIXES):
                params["image_sha256"] = hashlib.sha256(self._image_path().read_bytes()).hexdigest()
        return params

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise LabelGenerationError(
                f"the openai label backend reads its API key from the environment variable "
                f"{self.api_key_env}, which is not set (set it, or name another variable in "
                "semantics.labels.openai.api_key_env; keys are never read from the config)"
            )
        return key

    def _image_path(self) -> Path:
        path = Path(str(self.image)).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config key semantics.labels.openai.image: {str(self.image)!r} is neither a "
                "file nor an http(s)/data URL"
            )
        return path

    def _image_url(self) -> str:
        ref = str(self.image)
        if ref.startswith(_REMOTE_PREFIXES):
            return ref
        path = self._image_path()
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"

    def _messages(self, messages: list[dict[str, str]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [dict(m) for m in messages]
        if self.image:  # the example image goes with the first request only
            out[0]["content"] = [
                {"type": "text", "text": messages[0]["content"]},
                {"type": "image_url", "image_url": {"url": self._image_url()}},
            ]
        return out

    def complete(self, messages: list[dict[str, str]]) -> str:
        import openai  # heavy optional dependency: only when a request is sent

        key = self._api_key()
        request: dict[str, Any] = {"model": self.model, "messages": self._messages(messages)}
        if self.temperature is not None:
            request["temperature"] = float(self.temperature)
        failure = None
        client = openai.OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=self.max_retries_http,
        )
        try:
            response = client.chat.completions.create(**request)
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, Mapping) else {}
            failure = f"HTTP {exc.status_code}: {body.get('message') or exc.message}"
            if exc.status_code in (401, 403):
                failure += f" (check the key in the environment variable {self.api_key_env})"
        except openai.APITimeoutError:
            failure = f"no answer within {self.timeout_s:g} s"
        except openai.APIConnectionError as exc:
            failure = f"connection failed ({exc.__cause__ or exc})"
        except openai.OpenAIError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
        # Raised outside the except block so the client's exception (which may quote the key
        # back, as some servers do for a wrong key) is not attached as __context__.
        if failure is not None:
            raise LabelGenerationError(
                scrub(
                    f"openai label backend: chat completion with model {self.model!r} at "
                    f"{self.base_url} failed (max_retries_http={self.max_retries_http}): "
                    f"{failure[:800]}",
                    key,
                )
            )
        choices = response.choices or []
        content = choices[0].message.content if choices else None
        if not content:
            raise LabelGenerationError(
                f"openai label backend: model {self.model!r} at {self.base_url} returned an "
                "empty answer"
            )
        return scrub(content, key)
