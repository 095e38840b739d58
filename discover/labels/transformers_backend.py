"""The ``transformers`` backend: a local chat model, greedy decoding, no network.

``model`` is a local directory or a Hub id that ``fetch_weights`` put in the weights cache
(compute nodes never download). Decoding is greedy, so the same model and prompt give the same
labels.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from discover.errors import ConfigError
from discover.labels.base import LabelGenerator
from discover.labels.registry import register_label_generator
from discover.weights import resolve_pretrained_dir


@register_label_generator("transformers")
class TransformersLabels(LabelGenerator):
    """AutoTokenizer + AutoModelForCausalLM; the chat template when the tokenizer has one."""

    def __init__(self, cfg: Mapping[str, Any] | None = None):
        super().__init__(cfg)
        if not self.cfg.get("model"):
            raise ConfigError(
                "config key semantics.labels.transformers.model: a local directory or Hub id "
                "is required"
            )
        self.max_new_tokens = int(self.cfg.get("max_new_tokens", 512))
        self.device = self.cfg.get("device")
        self.dtype = self.cfg.get("dtype", "auto")
        self._loaded: tuple[Any, Any] | None = None

    def parameters(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "dtype": str(self.dtype),
            "decoding": "greedy",
        }

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            # Heavy optional dependencies: imported only when the model is loaded.
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            directory = resolve_pretrained_dir(self.cfg["model"], self.cfg.get("weights_cache"))
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            # local_files_only: the directory is complete; a missing file must fail, not download.
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                directory, local_files_only=True, dtype=self.dtype
            )
            self._loaded = (tokenizer, model.to(device).eval())
        return self._loaded

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        """The conversation as the model's own chat format, or plain role-tagged text."""
        tokenizer, _ = self._load()
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join([*turns, "Assistant:"])

    def complete(self, messages: list[dict[str, str]]) -> str:
        import torch  # heavy optional dependency: only when generating

        tokenizer, model = self._load()
        text = self.prompt_text(messages)
        # A chat template already wrote the special tokens the model expects.
        encoded = tokenizer(
            text,
            return_tensors="pt",
            add_special_tokens=not getattr(tokenizer, "chat_template", None),
        )
        # Only what every causal LM takes (some tokenizers add token_type_ids, which it rejects).
        inputs = {k: encoded[k].to(model.device) for k in ("input_ids", "attention_mask")}
        generation = copy.deepcopy(model.generation_config)
        # Greedy, whatever sampling the checkpoint's generation_config asks for.
        generation.update(
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=self.max_new_tokens,
        )
        if generation.pad_token_id is None:
            generation.pad_token_id = tokenizer.pad_token_id or tokenizer.eos_token_id
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=generation)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return tokenizer.decode(new_tokens, skip_special_tokens=True)
