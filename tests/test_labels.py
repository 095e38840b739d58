"""Task labels (the paper's Algorithm 1): backends, parsing, retries, secrecy and cache keys.

The openai backend talks to a real HTTP server on 127.0.0.1 that speaks chat completions; the
transformers backend runs a tiny Llama built here whose weights make it recite a fixed list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from discover.datasets.synthetic_scenes import CATEGORIES
from discover.errors import DiscoverError, LabelGenerationError
from discover.labels import (
    cache_key,
    clean_label,
    dedupe,
    generate_labels,
    label_backend_config,
    load_label_file,
    parse_label_list,
    read_labels,
    task_cache_key,
    write_labels,
)
from discover.labels.base import LISTS_DIR, TEMPLATES_DIR

from .conftest import ChatServer

KEY = "sk-test-7f3c9e1d5b2a4680-secret"
DESCRIPTION = "object detection on images of textured geometric shapes"
COCO = """person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant
stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack
umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove
skateboard surfboard tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple
sandwich orange broccoli carrot hot_dog pizza donut cake chair couch potted_plant bed
dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink
refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"""
COCO_NAMES = [w.replace("_", " ") for w in COCO.split()]


# -- an OpenAI-compatible chat-completions server -------------------------------------------


@pytest.fixture
def chat_server(monkeypatch) -> Iterator[Callable[[list], ChatServer]]:
    monkeypatch.setenv("LABELS_TEST_KEY", KEY)
    servers: list[ChatServer] = []

    def start(script: list) -> ChatServer:
        servers.append(ChatServer(script).__enter__())
        return servers[-1]

    yield start
    for server in servers:
        server.__exit__()


def openai_cfg(server: ChatServer, **overrides) -> dict:
    cfg = {
        "backend": "openai",
        "min_labels": 100,
        "max_retries": 2,
        "openai": {
            "base_url": server.base_url,
            "model": "test-model",
            "api_key_env": "LABELS_TEST_KEY",
            "timeout_s": 5,
            "max_retries_http": 3,
        },
    }
    cfg["openai"].update(overrides.pop("openai", {}))
    cfg.update(overrides)
    return cfg


def labels(n: int, start: int = 0) -> list[str]:
    return [f"shape {i}" for i in range(start, start + n)]


TASK = {"description": DESCRIPTION}


def test_openai_request_shape_provenance_and_round_trip(chat_server, tmp_path):
    server = chat_server([json.dumps(labels(120))])
    doc = generate_labels("detection", TASK, openai_cfg(server))
    assert doc["labels"] == labels(120) and doc["count"] == 120
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {KEY}"
    body = req["json"]
    assert body["model"] == "test-model" and body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["user"]
    prompt = body["messages"][0]["content"]
    assert DESCRIPTION in prompt and "not be fewer than 100" in prompt
    assert "detection task" in prompt and "granularity" in prompt
    prov = doc["provenance"]
    template = (TEMPLATES_DIR / "task_labels_v1.txt").read_text()
    assert prov["backend"] == "openai" and prov["model"] == "test-model"
    assert prov["template"] == "task_labels_v1"
    assert prov["template_sha256"] == __import__("hashlib").sha256(template.encode()).hexdigest()
    assert prov["parameters"]["base_url"] == server.base_url
    assert prov["created_utc"].endswith("+00:00") and prov["requests"] == 1
    assert doc["cache_key"] == task_cache_key("detection", TASK, openai_cfg(server))
    write_labels(tmp_path / "labels.json", doc)
    assert read_labels(tmp_path / "labels.json") == doc


def test_openai_attaches_an_example_image(chat_server, tmp_path):
    image = tmp_path / "example.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n fake")
    server = chat_server([json.dumps(labels(100))])
    doc = generate_labels("detection", TASK, openai_cfg(server, openai={"image": str(image)}))
    text, picture = server.requests[0]["json"]["messages"][0]["content"]
    assert text["type"] == "text" and DESCRIPTION in text["text"]
    assert picture["image_url"]["url"].startswith("data:image/png;base64,")
    assert len(doc["provenance"]["parameters"]["image_sha256"]) == 64


def test_openai_retries_429_then_500_then_succeeds(chat_server):
    error = {"error": {"message": "slow down", "type": "rate_limit"}}
    server = chat_server([(429, error), (500, error), json.dumps(labels(100))])
    doc = generate_labels("detection", TASK, openai_cfg(server))
    assert len(server.requests) == 3 and doc["count"] == 100
    # the same request is replayed, marked with the client's retry counter
    assert [r["headers"].get("x-stainless-retry-count") for r in server.requests] == ["0", "1", "2"]
    assert all(r["json"] == server.requests[0]["json"] for r in server.requests)


def test_openai_retries_dropped_connection_and_timeout(chat_server):
    server = chat_server(["drop", ("sleep", 1.5, "[]"), json.dumps(labels(100))])
    doc = generate_labels("detection", TASK, openai_cfg(server, openai={"timeout_s": 0.5}))
    assert len(server.requests) == 3 and doc["count"] == 100


def test_openai_gives_up_after_max_retries_http(chat_server):
    server = chat_server([(503, {"error": {"message": "overloaded"}})])
    with pytest.raises(LabelGenerationError, match="HTTP 503.*overloaded"):
        generate_labels("detection", TASK, openai_cfg(server, openai={"max_retries_http": 1}))
    assert len(server.requests) == 2


def test_openai_key_never_leaks(chat_server, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx", "httpx2", "httpcore", "discover"):
        caplog.set_level(logging.DEBUG, logger=name)
    # Some servers quote a rejected key back; that text must not reach our error either.
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "auth"}}
    server = chat_server([(401, echo)])
    with pytest.raises(LabelGenerationError) as info:
        generate_labels("detection", TASK, openai_cfg(server))
    err = info.value
    assert "HTTP 401" in str(err) and KEY not in str(err) and KEY not in repr(err)
    assert err.__cause__ is None and err.__context__ is None  # no chained client exception

    server = chat_server([json.dumps(labels(100))])
    doc = generate_labels("detection", TASK, openai_cfg(server))
    write_labels(tmp_path / "labels.json", doc)
    out = capsys.readouterr()
    assert KEY not in (tmp_path / "labels.json").read_text()
    assert KEY not in json.dumps(doc) and "LABELS_TEST_KEY" in json.dumps(doc)
    assert KEY not in caplog.text and KEY not in out.out + out.err
    assert len(caplog.records) > 0  # the client did log at DEBUG, without the key


@pytest.mark.parametrize(
    "style",
    ["json", "fenced", "object", "numbered", "bullets", "commas"],
)
def test_openai_parses_list_formats(chat_server, style):
    names = [f"Shape {i}" for i in range(100)]
    reply = {
        "json": json.dumps(names),
        "fenced": "Sure! Here is the list [100 labels]:\n```json\n" + json.dumps(names) + "\n```",
        "object": json.dumps({"labels": names}),
        "numbered": "Here are the labels:\n"
        + "\n".join(f"{i + 1}. **{n}**" for i, n in enumerate(names))
        + "\nLet me know if you need more.",
        "bullets": "\n".join(f"- '{n}'" for n in names),
        "commas": "\n".join(", ".join(names[i : i + 10]) for i in range(0, 100, 10)),
    }[style]
    server = chat_server([reply])
    doc = generate_labels("detection", TASK, openai_cfg(server))
    assert doc["labels"] == [n.lower() for n in names]


def test_openai_asks_for_more_when_too_few(chat_server):
    server = chat_server([json.dumps(labels(10)), json.dumps(labels(95, start=5))])
    doc = generate_labels("detection", TASK, openai_cfg(server))
    assert doc["labels"] == labels(100) and doc["provenance"]["requests"] == 2
    follow = server.requests[1]["json"]["messages"]
    assert [m["role"] for m in follow] == ["user", "assistant", "user"]
    assert follow[1]["content"] == json.dumps(labels(10))
    assert (
        "10 distinct labels" in follow[2]["content"] and "not in the list" in follow[2]["content"]
    )
    assert json.dumps(labels(10)) in follow[2]["content"]


def test_openai_never_enough_labels_fails_naming_task_and_count(chat_server):
    server = chat_server([json.dumps(labels(10))])
    with pytest.raises(LabelGenerationError, match=r"task 'detection'.* 10 distinct labels"):
        generate_labels("detection", TASK, openai_cfg(server, max_retries=2))
    assert len(server.requests) == 3


def test_openai_missing_env_var_names_it(monkeypatch):
    monkeypatch.delenv("NO_SUCH_LABELS_KEY", raising=False)
    cfg = {"backend": "openai", "openai": {"api_key_env": "NO_SUCH_LABELS_KEY"}}
    with pytest.raises(LabelGenerationError, match="NO_SUCH_LABELS_KEY.*not set"):
        generate_labels("detection", TASK, cfg)


# -- transformers: a tiny Llama that recites a list -----------------------------------------

RECITED = ["circle", "square", "star", "ring", "cross", "diamond"]


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory) -> Path:
    """A 1-layer Llama whose next token depends only on the current one: after the chat
    template's "assistant :" it emits "circle, square, ... diamond" and then </s>.

    Embeddings are one-hot, attention and MLP outputs are zeroed (the residual stream is the
    token itself) and the LM head is the successor table of that chain.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chain = [f"{w}," for w in RECITED[:-1]] + [RECITED[-1]]
    vocab = ["<pad>", "<s>", "</s>", "<unk>", "user", "assistant", ":", *chain]
    ids = {w: i for i, w in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordLevel(ids, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant :{% endif %}"
    )
    size = len(vocab)
    hidden = size + size % 2  # RoPE wants an even head size
    config = LlamaConfig(
        vocab_size=size,
        hidden_size=hidden,
        intermediate_size=8,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    successor = {w: ids["</s>"] for w in vocab}
    for here, there in zip([":", *chain], chain, strict=False):
        successor[here] = ids[there]
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(size, hidden))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for word, nxt in successor.items():
            model.lm_head.weight[nxt, ids[word]] = 10.0
    directory = tmp_path_factory.mktemp("tiny-chat")
    fast.save_pretrained(directory)
    model.save_pretrained(directory)
    return directory


def transformers_cfg(model_dir: Path, **overrides) -> dict:
    cfg = {
        "backend": "transformers",
        "min_labels": 6,
        "max_retries": 1,
        "transformers": {"model": str(model_dir), "max_new_tokens": 12, "device": "cpu"},
    }
    cfg.update(overrides)
    return cfg


def test_transformers_generates_from_local_dir_deterministically(tiny_chat_model):
    first = generate_labels("detection", TASK, transformers_cfg(tiny_chat_model))
    second = generate_labels("detection", TASK, transformers_cfg(tiny_chat_model))
    assert first["labels"] == RECITED == second["labels"]
    assert first["provenance"]["replies"] == second["provenance"]["replies"]
    assert first["provenance"]["replies"] == ["circle, square, star, ring, cross, diamond"]
    assert first["provenance"]["model"] == str(tiny_chat_model)
    assert first["cache_key"] == second["cache_key"]


def test_transformers_prompt_uses_chat_template_or_plain_text(tiny_chat_model):
    from discover.labels.transformers_backend import TransformersLabels

    gen = TransformersLabels({"model": str(tiny_chat_model), "device": "cpu"})
    messages = [{"role": "user", "content": "list shapes"}]
    assert gen.prompt_text(messages) == "user : list shapes\nassistant :"
    gen._load()[0].chat_template = None
    assert gen.prompt_text(messages) == "User: list shapes\n\nAssistant:"


def test_transformers_too_few_labels_fails_naming_task(tiny_chat_model):
    cfg = transformers_cfg(tiny_chat_model, min_labels=50, max_retries=1)
    with pytest.raises(LabelGenerationError, match=r"task 'detection'.* 6 distinct labels after 2"):
        generate_labels("detection", TASK, cfg)


def test_transformers_hub_id_must_be_in_weights_cache(tmp_path):
    cfg = transformers_cfg(Path("someone/tiny-chat"), weights_cache=str(tmp_path))
    with pytest.raises(DiscoverError, match="weights cache"):
        generate_labels("detection", TASK, cfg)


# -- static lists, normalisation, config and cache keys -------------------------------------


@pytest.mark.parametrize(
    "name", ["synthetic-scenes-detection.txt", "photos-classification.txt", "detection.txt"]
)
def test_shipped_lists_have_enough_unique_labels(name):
    doc = generate_labels("task", {}, {"backend": "static", "path": name})
    assert doc["count"] >= 100 and len(set(doc["labels"])) == doc["count"]
    assert doc["provenance"]["template_sha256"] is None  # no prompt involved
    assert (LISTS_DIR / name).read_text().startswith("#")  # says what it is for


def test_shipped_lists_cover_their_categories():
    scenes = load_label_file(LISTS_DIR / "synthetic-scenes-detection.txt")
    assert scenes[: len(CATEGORIES)] == list(CATEGORIES)
    general = load_label_file(LISTS_DIR / "detection.txt")
    assert len(COCO_NAMES) == 80 and set(COCO_NAMES) <= set(general)
    photos = load_label_file(LISTS_DIR / "photos-classification.txt")
    assert {"astronaut", "cat", "coffee", "rocket", "galaxy"} <= set(photos)


def test_static_default_path_is_the_task_name():
    doc = generate_labels("detection", {}, {"backend": "static"})
    assert "coffee maker" not in doc["labels"] and "person" in doc["labels"]


def test_user_lists_load_txt_json_and_previous_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("# my labels\n1. Red Car\n- red  car\n\n'Bus'  # inline\n")
    (tmp_path / "mine.json").write_text(json.dumps(["Red Car", " bus "]))
    cfg = {"backend": "static", "min_labels": 1}
    for name in ("mine.txt", "mine.json"):
        assert generate_labels("t", {}, {**cfg, "path": name})["labels"] == ["red car", "bus"]
    doc = generate_labels("t", {}, {**cfg, "path": "mine.txt"})
    write_labels(tmp_path / "previous.json", doc)
    assert load_label_file(tmp_path / "previous.json") == ["red car", "bus"]
    # a file in the working directory shadows the shipped list of the same name
    (tmp_path / "detection.txt").write_text("only this\n")
    assert generate_labels("t", {}, {**cfg, "path": "detection.txt"})["labels"] == ["only this"]
    with pytest.raises(DiscoverError, match="neither a file"):
        generate_labels("t", {}, {**cfg, "path": "missing.txt"})


def test_normalisation_and_dedup():
    assert clean_label('  1.  "Traffic   Light" ') == "traffic light"
    assert clean_label("- **Fire Hydrant**,") == "fire hydrant"
    assert clean_label("(12) \u2018Stop sign\u2019") == "stop sign"
    assert clean_label("3.5 inch floppy") == "3.5 inch floppy"
    assert clean_label("\u2022 ") == ""
    assert dedupe(["Cat", "dog", " cat ", "", "DOG", "bird"]) == ["cat", "dog", "bird"]
    assert parse_label_list("Labels:\n1. car - a vehicle\n2. bus\n3. car") == ["car", "bus"]


def test_cache_key_tracks_task_template_backend_and_model(tmp_path):
    base = ("detection", "a" * 64, "openai", "gpt-4o", DESCRIPTION)
    key = cache_key(*base)
    assert key == cache_key(*base) and len(key) == 16 and int(key, 16) >= 0
    for i, other in enumerate(["classification", "b" * 64, "transformers", "gpt-4o-mini", "x"]):
        changed = list(base)
        changed[i] = other
        assert cache_key(*changed) != key

    cfg = {"backend": "openai", "openai": {"model": "gpt-4o"}}
    key = task_cache_key("detection", TASK, cfg)  # no key, no server: nothing is requested
    assert key == task_cache_key("detection", TASK, cfg)
    edited = tmp_path / "task_labels_v2.txt"
    edited.write_text((TEMPLATES_DIR / "task_labels_v1.txt").read_text() + "Be concise.\n")
    assert task_cache_key("detection", TASK, {**cfg, "template": str(edited)}) != key
    assert task_cache_key("detection", TASK, {**cfg, "openai": {"model": "o3"}}) != key
    assert task_cache_key("classification", TASK, cfg) != key
    assert task_cache_key("detection", {"description": "other"}, cfg) != key
    # the static backend's identity is its file's content
    (tmp_path / "l.txt").write_text("a\n")
    static_key = task_cache_key("detection", TASK, {"path": str(tmp_path / "l.txt")})
    (tmp_path / "l.txt").write_text("a\nb\n")
    assert task_cache_key("detection", TASK, {"path": str(tmp_path / "l.txt")}) != static_key


def test_label_backend_config_applies_task_override():
    semantics = {
        "labels": {
            "backend": "openai",
            "min_labels": 120,
            "openai": {"model": "gpt-4o", "temperature": 0},
        }
    }
    plain = label_backend_config(semantics, "cls", {"description": "d"})
    assert plain["backend"] == "openai" and plain["max_retries"] == 2
    assert plain["openai"] == {"model": "gpt-4o", "temperature": 0}
    override = {"labels": {"backend": "static", "path": "detection.txt", "min_labels": 50}}
    merged = label_backend_config(semantics, "detection", override, weights_cache="wc")
    assert merged["backend"] == "static" and merged["min_labels"] == 50
    assert merged["static"] == {"path": "detection.txt"} and merged["weights_cache"] == "wc"
    assert semantics["labels"]["min_labels"] == 120  # the config itself is left alone
    nested = label_backend_config(semantics, "t", {"labels": {"openai": {"model": "o3"}}})
    assert nested["openai"] == {"model": "o3", "temperature": 0}
    assert generate_labels("detection", {}, merged)["count"] >= 100
