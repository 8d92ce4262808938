"""Textual-inversion embeddings named in a prompt (embedding:name): equal to diffusers' load_textual_inversion."""

import pytest
import torch
from safetensors.torch import save_file

import nodegraph

from test_diffusion_sd import sd_folder  # noqa: F401 (fixture)


@pytest.fixture
def embedding_folder(tmp_path, monkeypatch, sd_folder):  # noqa: F811
    """A model folder holding embeddings/mystyle.safetensors: two random vectors as A1111 saves them."""
    from transformers import CLIPTextModel

    width = CLIPTextModel.from_pretrained(sd_folder / "text_encoder").config.hidden_size
    folder = tmp_path / "models"
    (folder / "embeddings").mkdir(parents=True)
    torch.manual_seed(3)
    save_file({"emb_params": torch.randn(2, width)}, str(folder / "embeddings" / "mystyle.safetensors"))
    monkeypatch.setenv("NODEGRAPH_MODEL_PATHS", str(folder))
    return folder


def encode(model, prompt, skip=0):
    wf = nodegraph.Workflow()
    wf.add_node("model.checkpoint", "ckpt", params={"model": str(model)})
    wf.add_node("cond.clip_skip", "skip", params={"skip": skip})
    wf.add_node("cond.text", "text", params={"prompt": prompt})
    wf.connect("ckpt", "text_encoder", "skip", "text_encoder")
    wf.connect("skip", "text_encoder", "text", "text_encoder")
    return wf


def test_an_embedding_named_in_the_prompt_equals_diffusers_load_textual_inversion(sd_folder, embedding_folder):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    result = nodegraph.Engine(device="cpu").run(encode(sd_folder, "embeddings/mystyle, a red circle"),
                                               targets=["text"])
    ours = result.outputs["text"]["conditioning"].positive["prompt_embeds"]
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    pipe.load_textual_inversion(str(embedding_folder / "embeddings" / "mystyle.safetensors"), token="<mystyle>")
    theirs, _ = pipe.encode_prompt("<mystyle>, a red circle", "cpu", 1, True)
    assert not torch.allclose(ours, theirs)  # "embeddings/mystyle" is plain text, not the embedding
    result = nodegraph.Engine(device="cpu").run(encode(sd_folder, "embedding:mystyle, a red circle"),
                                               targets=["text"])
    torch.testing.assert_close(result.outputs["text"]["conditioning"].positive["prompt_embeds"], theirs)
    plain, _ = pipe.encode_prompt("a red circle", "cpu", 1, True)
    again = nodegraph.Engine(device="cpu").run(encode(sd_folder, "a red circle"), targets=["text"])
    torch.testing.assert_close(again.outputs["text"]["conditioning"].positive["prompt_embeds"], plain)


def test_an_embedding_with_clip_skip_is_spelled_out_like_diffusers(sd_folder, embedding_folder):  # noqa: F811
    from diffusers import StableDiffusionPipeline

    result = nodegraph.Engine(device="cpu").run(encode(sd_folder, "embedding:mystyle a dog", skip=1),
                                               targets=["text"])
    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    pipe.load_textual_inversion(str(embedding_folder / "embeddings" / "mystyle.safetensors"), token="<mystyle>")
    spelled = pipe.maybe_convert_prompt("<mystyle> a dog", pipe.tokenizer)
    assert spelled == "<mystyle> <mystyle>_1 a dog"
    # diffusers' own clip_skip reaches for text_model, which transformers 5 no longer has: its definition,
    # the hidden state one layer before the last through the final layer norm, straight from transformers
    ids = pipe.tokenizer(spelled, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        theirs = pipe.text_encoder.text_model.final_layer_norm(hidden) if hasattr(pipe.text_encoder, "text_model") \
            else pipe.text_encoder.final_layer_norm(hidden)
    torch.testing.assert_close(result.outputs["text"]["conditioning"].positive["prompt_embeds"], theirs)


def test_a_missing_embedding_names_itself_and_a_changed_file_reencodes(sd_folder, embedding_folder):  # noqa: F811
    engine = nodegraph.Engine(device="cpu")
    with pytest.raises(nodegraph.NodeFailed, match="node 'text' failed: model 'nosuch' not found"):
        engine.run(encode(sd_folder, "embedding:nosuch"), targets=["text"])
    wf = encode(sd_folder, "embedding:mystyle")
    engine.run(wf, targets=["text"])
    save_file({"emb_params": torch.zeros(2, 32)}, str(embedding_folder / "embeddings" / "mystyle.safetensors"))
    again = engine.run(wf, targets=["text"])
    assert again.reasons["text"] == "its input file changed"
