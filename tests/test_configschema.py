"""config.json is read through a declared schema (compose/plan/configschema.py).

Known keys with a wrong type or an absurd value are one ConfigError line that names
the file and the field; unknown keys are the model's and are ignored; every
catalog model passes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compose.cli import app
from compose.core.errors import ConfigError
from compose.plan import catalog, configschema

TINY = {
    "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000, "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16", "tie_word_embeddings": False,
}


def write(tmp_path: Path, cfg, raw: str | None = None) -> Path:
    path = tmp_path / "m" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        path.write_text(raw)
    else:
        path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"quantization_config": {"quant_method": "awq", "bits": "x"}}, "quantization_config.bits", "2, 3, 4 or 8"),
        ({"quantization_config": {"quant_method": "gptq", "bits": -4}}, "quantization_config.bits", "2, 3, 4 or 8"),
        ({"quantization_config": {"quant_method": "fp8", "weight_block_size": [0, 0]}},
         "quantization_config.weight_block_size[0]", "at least 1"),
        ({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}},
         "quantization_config.weight_block_size", "must have at least 2"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": math.inf}}, "rope_scaling.factor", "finite"),
        ({"rope_scaling": {"rope_type": "linear", "factor": 0}}, "rope_scaling.factor", "greater than 0"),
        ({"torch_dtype": ["bfloat16"]}, "torch_dtype", "must be"),
        ({"torch_dtype": "int3"}, "torch_dtype", "bfloat16"),
        ({"vocab_size": 10**30}, "vocab_size", "at most"),
        ({"hidden_size": 2.5}, "hidden_size", "integer"),
        ({"num_hidden_layers": True}, "num_hidden_layers", "integer"),
        ({"tie_word_embeddings": "false"}, "tie_word_embeddings", "the string 'false'"),
        ({"attention_bias": "true"}, "attention_bias", "boolean"),
        ({"partial_rotary_factor": math.nan}, "partial_rotary_factor", "finite"),
        ({"_name_or_path": ["org", "name"]}, "_name_or_path", "string"),
        ({"quantization_config": {"quant_method": "compressed-tensors",
                                  "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 5}}}}},
         "quantization_config.config_groups.g.weights.num_bits", "2, 3, 4 or 8"),
        ({"quantization_config": {"quant_method": "modelopt", "quantization": "FP8"}},
         "quantization_config.quantization", "mapping"),
        ({"num_local_experts": 8, "num_experts_per_tok": 9}, "num_experts_per_tok", "exceeds"),
        ({"max_position_embeddings": 1 << 20, "rope_scaling": {"rope_type": "linear", "factor": 1000}},
         "rope_scaling", "exceeds"),
    ],
)
def test_wrong_types_and_ranges_are_one_line_naming_file_and_field(tmp_path, change, field, words):
    path = write(tmp_path, {**TINY, **change})
    with pytest.raises(ConfigError) as err:
        catalog.resolve_model(str(path))
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(str(path)), text
    assert field in text and words in text, text


def test_every_wrong_field_is_named_at_once(tmp_path):
    path = write(tmp_path, {**TINY, "hidden_size": "64", "tie_word_embeddings": "no", "vocab_size": -1})
    with pytest.raises(ConfigError) as err:
        catalog.resolve_model(str(path))
    for field in ("hidden_size", "tie_word_embeddings", "vocab_size"):
        assert field in str(err.value)


def test_false_as_a_string_is_not_read_as_true():
    """The old reader took bool("false") == True and dropped the LM head from the weights."""
    with pytest.raises(ConfigError, match="tie_word_embeddings"):
        catalog.parse_config({**TINY, "tie_word_embeddings": "false"})
    assert catalog.parse_config({**TINY, "tie_word_embeddings": False}).tie_word_embeddings is False
    assert catalog.parse_config({**TINY, "tie_word_embeddings": True}).tie_word_embeddings is True


def test_unknown_keys_are_the_models_own():
    arch = catalog.parse_config({**TINY, "my_lab_field": {"anything": [1, "x"]}, "architectures": ["X"], "bits": "?"})
    assert arch.hidden_size == 64


@pytest.mark.parametrize("entry", catalog.models(), ids=lambda e: e.slug)
def test_every_catalog_config_passes_the_schema(entry):
    configschema.check(entry.config, entry.slug)


@pytest.mark.parametrize(
    "raw, words",
    [
        ('{"hidden_size": ' + "9" * 5000 + "}", "not a config.json"),
        ("[" * 100000 + "]" * 100000, "not a config.json"),
        ('{"vocab_size": 1e400}', "vocab_size"),
        ('{"hidden_size": NaN}', "hidden_size"),
    ],
)
def test_hostile_json_is_one_line(tmp_path, raw, words):
    path = write(tmp_path, None, raw)
    with pytest.raises(ConfigError) as err:
        catalog.resolve_model(str(path))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_non_utf8_config_is_one_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "\xff\xfe"}')
    with pytest.raises(ConfigError, match="UTF-8"):
        catalog.resolve_model(str(path))


@pytest.mark.parametrize("change", [
    {"quantization_config": {"quant_method": "awq", "bits": "x"}},
    {"rope_scaling": {"factor": math.inf}},
    {"vocab_size": 10**30},
    {"torch_dtype": ["bfloat16"]},
])
def test_compose_plan_prints_one_line_and_exits_2(tmp_path, change):
    path = write(tmp_path, {**TINY, **change})
    res = CliRunner().invoke(app, ["plan", str(path), "--gpu", "l4"], prog_name="compose")
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
