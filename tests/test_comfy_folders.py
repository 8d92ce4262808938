"""A user's ComfyUI install: its model folders per kind and its extra_model_paths.yaml, read as ComfyUI reads them."""

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

import nodegraph
from nodegraph import comfyui_paths, models
from nodegraph.cli import main
from nodegraph.model_kinds import KINDS

from conftest import REPO
from test_diffusion_sd import sd_folder, txt2img  # noqa: F401 (fixture)

# The layout of ComfyUI's extra_model_paths.yaml.example: named sections, a base_path, '|' blocks of folders.
EXTRA_PATHS = """\
#config for a1111 ui
a111:
    base_path: ../stable-diffusion-webui/

    checkpoints: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    controlnet: models/ControlNet

#a central folder of models, searched before the install's own
shared:
    base_path: {shared}
    is_default: true
    checkpoints: checkpoints/
    unet: unet/

#no base_path: relative folders are relative to this file's folder
local:
    embeddings: my-embeddings
"""


def touch(path: Path, data: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """A ComfyUI install beside an A1111 one and a shared model folder, all in tmp_path."""
    monkeypatch.setenv("NODEGRAPH_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(tmp_path / "no-generic-models"))
    root = tmp_path / "ComfyUI"
    touch(root / "main.py", b"")
    models_dir = root / "models"
    touch(models_dir / "checkpoints" / "SDXL" / "sd_xl_base_1.0.safetensors")
    touch(models_dir / "checkpoints" / "old.ckpt", b"not a pickle that anyone will open")
    touch(models_dir / "checkpoints" / "readme.txt", b"not a model")
    touch(models_dir / "unet" / "flux1-dev.safetensors")
    touch(models_dir / "diffusion_models" / "sd3" / "sd3.5_medium.safetensors")
    touch(models_dir / "clip" / "t5xxl_fp16.safetensors")
    touch(models_dir / "loras" / "style" / "ink.safetensors")
    touch(models_dir / "vae" / "sdxl_vae.safetensors")
    webui = tmp_path / "stable-diffusion-webui" / "models"
    touch(webui / "Stable-diffusion" / "v1-5-pruned.safetensors")
    touch(webui / "Lora" / "a1111-lora.safetensors")
    touch(webui / "LyCORIS" / "lycoris.safetensors")
    shared = tmp_path / "shared"
    touch(shared / "checkpoints" / "SDXL" / "sd_xl_base_1.0.safetensors")  # is_default: found before the install's
    touch(shared / "unet" / "shared-unet.safetensors")
    touch(root / "my-embeddings" / "easynegative.safetensors")
    (root / "extra_model_paths.yaml").write_text(EXTRA_PATHS.format(shared=shared))
    monkeypatch.setenv("NODEGRAPH_COMFYUI", str(root))
    return tmp_path


def test_comfyui_names_resolve_to_the_right_file_per_kind(comfy):
    root, webui = comfy / "ComfyUI" / "models", comfy / "stable-diffusion-webui" / "models"
    expect = {
        ("SDXL/sd_xl_base_1.0.safetensors", "checkpoints"): comfy / "shared/checkpoints/SDXL/sd_xl_base_1.0.safetensors",
        ("SDXL\\sd_xl_base_1.0.safetensors", "checkpoints"): comfy / "shared/checkpoints/SDXL/sd_xl_base_1.0.safetensors",
        ("v1-5-pruned.safetensors", "checkpoints"): webui / "Stable-diffusion/v1-5-pruned.safetensors",
        ("flux1-dev.safetensors", "diffusion_models"): root / "unet/flux1-dev.safetensors",
        ("flux1-dev.safetensors", "unet"): root / "unet/flux1-dev.safetensors",  # ComfyUI's legacy name
        ("sd3/sd3.5_medium.safetensors", "diffusion_models"): root / "diffusion_models/sd3/sd3.5_medium.safetensors",
        ("shared-unet.safetensors", "diffusion_models"): comfy / "shared/unet/shared-unet.safetensors",
        ("t5xxl_fp16.safetensors", "text_encoders"): root / "clip/t5xxl_fp16.safetensors",
        ("style/ink.safetensors", "loras"): root / "loras/style/ink.safetensors",
        ("style\\ink.safetensors", "loras"): root / "loras/style/ink.safetensors",
        ("lycoris.safetensors", "loras"): webui / "LyCORIS/lycoris.safetensors",
        ("sdxl_vae.safetensors", "vae"): root / "vae/sdxl_vae.safetensors",
        ("easynegative.safetensors", "embeddings"): comfy / "ComfyUI/my-embeddings/easynegative.safetensors",
    }
    for (name, kind), path in expect.items():
        assert models.resolve(name, comfy / "workflows", kind) == path, (name, kind)


def test_folders_come_in_comfyuis_order(comfy):
    root, webui, shared = comfy / "ComfyUI" / "models", comfy / "stable-diffusion-webui" / "models", comfy / "shared"
    assert comfyui_paths.folders_of("checkpoints") == [shared / "checkpoints", root / "checkpoints",
                                                       webui / "Stable-diffusion"]
    assert comfyui_paths.folders_of("loras") == [root / "loras", webui / "Lora", webui / "LyCORIS"]
    assert comfyui_paths.folders_of("unet") == comfyui_paths.folders_of("diffusion_models") == [
        shared / "unet", root / "unet", root / "diffusion_models"]
    assert comfyui_paths.folders_of("text_encoders") == [root / "text_encoders", root / "clip"]
    assert comfyui_paths.folders_of("controlnet") == [root / "controlnet", root / "t2i_adapter", webui / "ControlNet"]
    assert set(KINDS) <= set(comfyui_paths.all_folders())


def test_a_name_under_the_wrong_kind_is_not_found_and_the_message_says_where_it_looked(comfy):
    with pytest.raises(models.ModelNotFound) as e:
        models.resolve("style/ink.safetensors", comfy, "checkpoints")
    message = str(e.value)
    assert "'style/ink.safetensors' not found" in message and "ComfyUI checkpoints folders" in message
    for folder in comfyui_paths.folders_of("checkpoints"):
        assert str(folder) in message
    assert "loras" not in message
    with pytest.raises(models.ModelNotFound):  # nor without a kind: ComfyUI names belong to a kind's folders
        models.resolve("style/ink.safetensors", comfy)
    with pytest.raises(models.ModelNotFound):  # a name never climbs out of the kind folders
        models.resolve("../loras/style/ink.safetensors", comfy / "elsewhere", "checkpoints")


def test_a_ckpt_is_refused_with_the_advice_to_convert_it_and_never_opened(comfy, monkeypatch):
    import pickle

    import torch

    def never(*args, **kwargs):
        raise AssertionError("a pickle was opened")

    monkeypatch.setattr(torch, "load", never)
    monkeypatch.setattr(pickle, "load", never)
    with pytest.raises(models.ModelRefused, match=r"convert it to \.safetensors"):
        models.resolve("old.ckpt", comfy, "checkpoints")
    wf = txt2img("old.ckpt")
    with pytest.raises(nodegraph.NodeFailed) as e:
        nodegraph.Engine(device="cpu").run(wf, targets=["ckpt"])
    assert "node 'ckpt'" in str(e.value) and "old.ckpt" in str(e.value) and "convert it to .safetensors" in str(e.value)
    folder = comfy / "ComfyUI" / "models" / "checkpoints" / "diffusers-with-bin"  # diffusers reads these weights_only
    touch(folder / "unet" / "diffusion_pytorch_model.bin")
    (folder / "model_index.json").write_text("{}")
    assert models.resolve("diffusers-with-bin", comfy, "checkpoints") == folder


def test_available_lists_what_comfyui_would_show(comfy):
    folder = comfy / "ComfyUI" / "models" / "checkpoints" / "SD1.5" / "tiny-sd"  # a diffusers folder: one entry
    touch(folder / "unet" / "diffusion_pytorch_model.safetensors")
    (folder / "model_index.json").write_text("{}")
    generic = models.available()
    assert models.available("checkpoints") == generic + [
        "SD1.5/tiny-sd", "SDXL/sd_xl_base_1.0.safetensors", "old.ckpt", "v1-5-pruned.safetensors"]
    assert models.available("loras") == generic + [
        "a1111-lora.safetensors", "lycoris.safetensors", "style/ink.safetensors"]
    assert models.available("diffusion_models") == models.available("unet") == generic + [
        "flux1-dev.safetensors", "sd3/sd3.5_medium.safetensors", "shared-unet.safetensors"]
    assert models.available("clip_vision") == generic  # an empty kind adds nothing
    from nodes import _model_files

    assert _model_files.list_models("text_encoders") == generic + ["t5xxl_fp16.safetensors"]


def test_loader_parameters_declare_their_kind():
    registry = nodegraph.REGISTRY
    kinds = {(t, p): registry.get(t).param(p).kind for t, p in [
        ("model.checkpoint", "model"), ("model.denoiser", "model"), ("model.text_encoder", "model"),
        ("model.vae", "model"), ("model.lora", "lora"), ("model.controlnet", "model"), ("encode.load", "model"),
        ("control.ip_adapter", "ip_adapter")]}
    assert kinds == {("model.checkpoint", "model"): "checkpoints", ("model.denoiser", "model"): "diffusion_models",
                     ("model.text_encoder", "model"): "text_encoders", ("model.vae", "model"): "vae",
                     ("model.lora", "lora"): "loras", ("model.controlnet", "model"): "controlnet",
                     ("encode.load", "model"): "clip_vision", ("control.ip_adapter", "ip_adapter"): "ipadapter"}
    [declared] = [p for p in registry.get("model.lora").describe()["params"] if p["name"] == "lora"]
    assert declared["hint"] == "model" and declared["kind"] == "loras"
    with pytest.raises(ValueError, match="kind 'lora'"):  # a typo in a declaration is caught when it is made
        nodegraph.NodeType("test.bad_kind", 1, "Bad", "test", run=lambda ctx, m: {},
                           params=(nodegraph.Param("m", nodegraph.PortType.STRING, "", hint="model", kind="lora"),))


BROKEN = {  # what is wrong -> (yaml text, the line the message must name)
    "bad indentation": ("comfyui:\n    base_path: /x\n  checkpoints: models/checkpoints\n", 3),
    "a tab": ("comfyui:\n\tcheckpoints: models/checkpoints\n", 2),
    "a list of folders": ("comfyui:\n    base_path: /x\n    loras:\n        - a\n        - b\n", 3),
    "a section that is text": ("comfyui: models\n", 1),
}


@pytest.mark.parametrize("what", BROKEN)
def test_a_broken_yaml_names_the_file_and_the_line(comfy, capsys, what):
    text, line = BROKEN[what]
    yaml_path = comfy / "ComfyUI" / "extra_model_paths.yaml"
    yaml_path.write_text(text)
    with pytest.raises(comfyui_paths.ComfyPathsError, match=re.escape(f"{yaml_path}, line {line}:")):
        models.resolve("anything.safetensors", comfy, "checkpoints")
    nodegraph.save(txt2img("anything.safetensors"), comfy / "w.json")
    assert main(["validate", str(comfy / "w.json")]) == 1  # said in one line, no traceback
    err = capsys.readouterr().err
    assert f"node 'ckpt' port 'model': {yaml_path}, line {line}:" in err and "Traceback" not in err
    assert main(["run", str(comfy / "w.json"), "--output-dir", str(comfy / "out")]) == 1
    assert f"{yaml_path}, line {line}:" in capsys.readouterr().err


def test_the_environment_wins_over_the_settings_and_standalone_yaml_files_are_read(comfy, monkeypatch):
    other = comfy / "OtherComfy"
    touch(other / "models" / "checkpoints" / "other.safetensors")
    (comfy / "settings.json").write_text(json.dumps({"comfyui": str(other)}))
    names = models.available("checkpoints")
    assert "SDXL/sd_xl_base_1.0.safetensors" in names and "other.safetensors" not in names  # the environment's install
    monkeypatch.delenv("NODEGRAPH_COMFYUI")
    assert models.resolve("other.safetensors", None, "checkpoints") == other / "models/checkpoints/other.safetensors"
    standalone = comfy / "elsewhere" / "paths.yaml"
    touch(standalone.parent / "loras" / "far.safetensors")
    standalone.write_text("mine:\n    base_path: $MY_MODELS\n    loras: loras\n")  # $VARS expand, as in ComfyUI
    monkeypatch.setenv("MY_MODELS", str(standalone.parent))
    (comfy / "settings.json").write_text(json.dumps({"comfyui": str(other), "comfyui_extra_paths": str(standalone)}))
    assert models.resolve("far.safetensors", None, "loras") == standalone.parent / "loras/far.safetensors"
    (comfy / "settings.json").write_text(json.dumps({}))
    monkeypatch.setenv("NODEGRAPH_COMFYUI_EXTRA_PATHS", str(standalone))  # no install needed for a standalone file
    assert comfyui_paths.all_folders() == {"loras": [standalone.parent / "loras"]}
    monkeypatch.setenv("NODEGRAPH_COMFYUI_EXTRA_PATHS", str(comfy / "missing.yaml"))
    with pytest.raises(comfyui_paths.ComfyPathsError, match="missing.yaml: no such file"):
        models.available("loras")


def test_a_workflow_naming_a_comfyui_checkpoint_runs_and_is_found_again_by_hash(comfy, sd_folder, capsys):  # noqa: F811
    target = comfy / "ComfyUI" / "models" / "checkpoints" / "SD1.5" / "tiny-sd"
    shutil.copytree(sd_folder, target)
    result = nodegraph.Engine(device="cpu").run(txt2img("SD1.5\\tiny-sd"), targets=["decode"])  # a Windows name
    assert result.outputs["decode"]["image"].shape == (1, 3, 32, 32) and "ckpt" in result.executed

    wf = txt2img("SD1.5/tiny-sd")
    wf.add_node("image.save", "save", params={"filename_prefix": "pic"})
    wf.connect("decode", "image", "save", "image")
    wf.base_dir = comfy
    models.record(wf)
    assert wf.metadata["models"]["ckpt.model"]["name"] == "tiny-sd"
    nodegraph.save(wf, comfy / "w.json")
    target.rename(target.parent.parent / "tiny-sd-renamed")  # moved out of SD1.5/ and renamed
    assert main(["run", str(comfy / "w.json"), "--output-dir", str(comfy / "out")]) == 0
    assert f"'SD1.5/tiny-sd' found by its hash at {target.parent.parent / 'tiny-sd-renamed'}" in capsys.readouterr().err


def readme_comfyui_command() -> str:
    text = Path(REPO, "README.md").read_text()
    section = text[text.index("## Diffusion models"):text.index("## Editor")]
    [command] = [line.strip() for line in section.splitlines()  # an indented code block
                 if line.startswith("    ") and line.strip().startswith("NODEGRAPH_COMFYUI=")]
    return command


def test_the_readme_command_for_comfyui_folders_runs(comfy, sd_folder, monkeypatch, tmp_path):  # noqa: F811
    """Run as written, with $HOME in tmp_path holding a ComfyUI install with a model in models/checkpoints/."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    words = shlex.split(readme_comfyui_command())
    env = {}
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = os.path.expanduser(value)  # as the shell does for an assignment
    assert words[0] == "nodegraph" and list(env) == ["NODEGRAPH_COMFYUI"]
    [model] = [w.split("=", 1)[1] for w in words if w.startswith("checkpoint.model=")]
    shutil.copytree(sd_folder, Path(env["NODEGRAPH_COMFYUI"]) / "models" / "checkpoints" / model)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "checkout"
    shutil.copytree(Path(REPO, "workflows"), work / "workflows")
    monkeypatch.chdir(work)
    assert main(words[1:]) == 0
    assert len(list((work / "out").glob("*.png"))) == 1


def test_settings_dialog_has_a_comfyui_folder_field(qtbot, tmp_path, monkeypatch):
    pytest.importorskip("PySide6")
    from gui.preferences import Preferences, SettingsDialog

    monkeypatch.setenv("NODEGRAPH_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("NODEGRAPH_COMFYUI", raising=False)
    prefs = Preferences()
    dialog = SettingsDialog(prefs)
    qtbot.addWidget(dialog)
    assert dialog.comfyui.text() == ""
    dialog.comfyui.setText(str(tmp_path / "ComfyUI"))
    dialog.save()
    assert json.loads((tmp_path / "settings.json").read_text())["comfyui"] == str(tmp_path / "ComfyUI")
    assert SettingsDialog(prefs).comfyui.text() == str(tmp_path / "ComfyUI")
    dialog.show()
    qtbot.waitExposed(dialog)
    shot = os.environ.get("NODEGRAPH_SCREENSHOT_DIR")  # to look at it: NODEGRAPH_SCREENSHOT_DIR=/tmp pytest ...
    if shot:
        dialog.grab().save(str(Path(shot) / "settings-comfyui.png"))
    dialog.comfyui.setText("")
    dialog.save()
    assert "comfyui" not in json.loads((tmp_path / "settings.json").read_text())


def test_the_inspectors_model_picker_lists_the_parameters_kind(comfy, qtbot, window):
    from PySide6.QtWidgets import QComboBox

    from test_editor import add_from_palette

    lora = add_from_palette(qtbot, window, "load lora")
    window.scene.clearSelection()
    window.scene.nodes[lora].setSelected(True)
    [combo] = window.inspector.findChildren(QComboBox)
    items = [combo.itemText(i) for i in range(combo.count())]
    assert items[-3:] == ["a1111-lora.safetensors", "lycoris.safetensors", "style/ink.safetensors"]
    assert "SDXL/sd_xl_base_1.0.safetensors" not in items
    (comfy / "ComfyUI" / "extra_model_paths.yaml").write_text("comfyui:\n\tloras: x\n")  # broken: said, not fatal
    window.scene.clearSelection()
    window.scene.nodes[lora].setSelected(True)
    assert "extra_model_paths.yaml, line 2" in window.log.toPlainText()
