"""Model names and the shipped model files in ui/runs.py."""

import pytest

from engine.errors import ModelFileError
from ui import runs


@pytest.mark.parametrize("name", ["my-net_2", "我的网络", "ÉtéNet"])
def test_model_name_accepts_letters_of_any_script(name):
    assert runs.validate_model_name(f"  {name} ") == name


@pytest.mark.parametrize("name", ["", "a/b", "../x", "net.npz", "x" * 65, "two words"])
def test_model_name_rejects_paths_and_dots(name):
    with pytest.raises(ModelFileError) as info:
        runs.validate_model_name(name)
    assert info.value.key == "model.bad_name"


def test_shipped_model_names_are_reserved(monkeypatch):
    monkeypatch.delenv(runs.MODELS_DIR_ENV, raising=False)
    for name in runs.SHIPPED_MODEL_NAMES:
        with pytest.raises(ModelFileError) as info:
            runs.validate_model_name(name)
        assert info.value.key == "model.reserved_name"


def test_shipped_names_free_in_another_models_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(runs.MODELS_DIR_ENV, str(tmp_path))
    assert runs.validate_model_name("mlp-ce") == "mlp-ce"
