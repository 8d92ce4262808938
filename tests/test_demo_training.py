"""Training and export of the demo models (nodegraph_demo/train.py) at --tiny size, on the CPU.

One module-scoped run trains every stage for two steps, a second command resumes each for one more,
then the export is loaded back with the unmodified diffusers pipelines.
"""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch

from nodegraph_demo import architectures as A
from nodegraph_demo import scenes, train

pytestmark = pytest.mark.filterwarnings("ignore")
SIZE = A.TINY.image_size


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo-work")
    out = work / "export"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train.main(["--stage", "all", "--work", str(work), "--tiny", "--steps", "2", "--device", "cpu"])
        first = {s: json.loads((work / s / "ckpt" / "state.json").read_text()) for s in train.STAGES}
        train.main(["--stage", "all", "--work", str(work), "--tiny", "--steps", "1", "--device", "cpu",
                    "--export", "--out", str(out), "--pack", str(work / "packed"),
                    "--eval", "--eval-count", "2", "--eval-steps", "1", "--eval-pictures", str(work / "pictures")])
    second = {s: json.loads((work / s / "ckpt" / "state.json").read_text()) for s in train.STAGES}
    return work, out, first, second


def test_every_stage_trains_then_resumes_from_its_checkpoint(trained):
    work, _, first, second = trained
    for stage in train.STAGES:
        assert first[stage]["step"] == 2 and second[stage]["step"] == 3, stage
        assert second[stage]["arch"] == "tiny"
        folder = work / stage / "ckpt"
        assert (folder / "optimizer.pt").is_file() and list(folder.glob("*.safetensors"))
        torch.load(folder / "optimizer.pt", weights_only=True)  # tensors and numbers only
    for name in ("vae", "tokenizer", "text_encoder", "unet", "controlnet", "dcae", "gemma_tokenizer", "gemma",
                 "transformer"):
        assert (work / "models" / name).is_dir(), name
    assert not list(work.rglob("*.tmp")) and not list(work.rglob("*.old"))


def test_the_autoencoders_scaling_factors_are_measured(trained):
    work = trained[0]
    for name in ("vae", "dcae"):
        factor = json.loads((work / "models" / name / "config.json").read_text())["scaling_factor"]
        assert factor != 1.0 and 0.01 < factor < 100, (name, factor)


def test_a_checkpoint_of_other_models_is_refused(trained, tmp_path):
    work = trained[0]
    with pytest.raises(SystemExit, match="tiny checkpoint"):
        train.main(["--stage", "vae", "--work", str(work), "--steps", "1", "--device", "cpu"])
    with pytest.raises(SystemExit, match="needs the finished 'vae'"):
        train.main(["--stage", "sd", "--work", str(tmp_path), "--tiny", "--steps", "1", "--device", "cpu"])


def test_the_export_is_fp16_in_diffusers_layouts_and_packed(trained):
    work, out, _, _ = trained
    index = json.loads((out / "demo-sd" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None] and index["feature_extractor"] == [None, None]
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (out / "demo-sd" / part).is_dir(), part
    assert json.loads((out / "demo-sana" / "model_index.json").read_text())["vae"] == ["diffusers", "AutoencoderDC"]
    assert json.loads((out / "demo-controlnet-canny" / "config.json").read_text())["_class_name"] == "ControlNetModel"
    from safetensors import safe_open

    weights = list(out.rglob("*.safetensors"))
    assert len(weights) == 7
    for path in weights:
        with safe_open(str(path), "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}, path  # noqa: SIM118 - not a dict
    assert sorted(p.name for p in (work / "packed").iterdir()) == [f"{n}.tar" for n in sorted(train.EXPORTS)]
    assert sorted(p.name for p in (work / "pictures").iterdir()) == [f"eval-{n}.png" for n in
                                                                      ("controlnet-canny", "sana", "sd")]


def test_diffusers_loads_the_exported_folders_and_draws_pictures(trained):
    from diffusers import (
        ControlNetModel,
        SanaPipeline,
        StableDiffusionControlNetPipeline,
        StableDiffusionPipeline,
    )

    out = trained[1]
    sd = StableDiffusionPipeline.from_pretrained(out / "demo-sd", torch_dtype=torch.float32)
    sd.set_progress_bar_config(disable=True)
    image = sd("a red circle on the left, blue background", num_inference_steps=2, output_type="pt").images
    assert image.shape == (1, 3, SIZE, SIZE)  # the pipeline's default size is the one trained on

    net = ControlNetModel.from_pretrained(out / "demo-controlnet-canny", torch_dtype=torch.float32)
    control = StableDiffusionControlNetPipeline(**sd.components, controlnet=net)
    control.set_progress_bar_config(disable=True)
    edges = scenes.canny(scenes.scene_batch(1, size=SIZE).images)
    image = control("a blue star", image=edges, num_inference_steps=2, output_type="pt").images
    assert image.shape == (1, 3, SIZE, SIZE)

    sana = SanaPipeline.from_pretrained(out / "demo-sana", torch_dtype=torch.float32)
    sana.set_progress_bar_config(disable=True)
    image = sana("a green square at the top, white background", height=SIZE, width=SIZE, num_inference_steps=2,
                 use_resolution_binning=False, output_type="pt").images
    assert image.shape == (1, 3, SIZE, SIZE)


def test_training_encodes_prompts_as_the_products_text_node_does(trained):
    """The embeddings trained on are the product's conditioning for the same prompt, bit for bit."""
    from diffusers import SanaPipeline, StableDiffusionPipeline

    from nodes._diffusion_types import TextEncoders
    from nodes._families import FAMILIES

    out = trained[1]
    prompt = "a small pink star in the centre, gray background"
    sd = StableDiffusionPipeline.from_pretrained(out / "demo-sd", torch_dtype=torch.float32)
    text = train.ClipText(sd.tokenizer, sd.text_encoder)
    text.tokenizer.provide(text.ahead([prompt, ""]))
    mine = text([prompt, ""], "cpu")
    te = TextEncoders("sd", {"text_encoder": sd.text_encoder, "tokenizer": sd.tokenizer}, "demo-sd")
    cond = FAMILIES["sd"].encode(te, prompt, "", "cpu")
    assert torch.equal(mine[:1], cond.positive["prompt_embeds"])
    assert torch.equal(mine[1:], cond.negative["prompt_embeds"])
    assert text.tokenizer.misses == 0  # the worker foresaw every tokenizer call

    sana = SanaPipeline.from_pretrained(out / "demo-sana", torch_dtype=torch.float32)
    text = train.GemmaText(sana.tokenizer, sana.text_encoder)
    prompts = [prompt, "a large red circle on the left and a small blue square at the top, white background", ""]
    text.tokenizer.provide(text.ahead(prompts))
    embeds, mask = text(prompts, "cpu")
    assert text.tokenizer.misses == 0
    te = TextEncoders("sana", {"text_encoder": sana.text_encoder, "tokenizer": sana.tokenizer}, "demo-sana")
    for i, (positive, negative) in enumerate(((prompts[0], prompts[2]), (prompts[1], prompts[2]))):
        cond = FAMILIES["sana"].encode(te, positive, negative, "cpu")
        # Gemma ran once over the shared instruction and not over the padding: the same numbers where the
        # transformer looks (mask 1), to float rounding, and the same mask
        assert mask[i].sum() > 10 and mask[2].sum() == 1  # the prompt's words and the instruction's end; <bos>
        for got, got_mask, want in ((embeds[i], mask[i], cond.positive), (embeds[2], mask[2], cond.negative)):
            assert torch.equal(got_mask, want["encoder_attention_mask"][0])
            seen = got_mask.bool()
            torch.testing.assert_close(got[seen], want["prompt_embeds"][0][seen], rtol=1e-5, atol=1e-5)
            assert not got[~seen].any()
    # so the transformer's prediction is the one inference gets from the product's conditioning
    transformer = sana.transformer
    cond = FAMILIES["sana"].encode(te, prompts[1], "", "cpu")
    latents = torch.randn(1, transformer.config.in_channels, transformer.config.sample_size, transformer.config.sample_size,
                          generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500.0])
    mine = transformer(latents, encoder_hidden_states=embeds[1:2], encoder_attention_mask=mask[1:2], timestep=t).sample
    product = transformer(latents, encoder_hidden_states=cond.positive["prompt_embeds"],
                          encoder_attention_mask=cond.positive["encoder_attention_mask"], timestep=t).sample
    torch.testing.assert_close(mine, product, rtol=1e-4, atol=1e-5)
    # and training cuts the padding off, which changes nothing either
    text.tokenizer.provide(text.ahead(prompts))
    short, short_mask = text(prompts, "cpu", trim=True)
    assert short.shape[1] == mask[1].sum() < 40 and torch.equal(short_mask, mask[:, :short.shape[1]])
    trimmed = transformer(latents, encoder_hidden_states=short[1:2], encoder_attention_mask=short_mask[1:2],
                          timestep=t).sample
    torch.testing.assert_close(trimmed, product, rtol=1e-4, atol=1e-5)


def test_every_caption_word_is_one_token(tmp_path):
    from transformers import CLIPTokenizer, GemmaTokenizer

    A.write_clip_tokenizer(tmp_path / "clip", 77)
    A.write_gemma_tokenizer(tmp_path / "gemma")
    clip = CLIPTokenizer.from_pretrained(tmp_path / "clip")
    gemma = GemmaTokenizer.from_pretrained(tmp_path / "gemma")
    for word in scenes.VOCABULARY:
        assert len(clip.tokenize(word)) == 1, word
        assert len(gemma.tokenize(" " + word)) == 1 or word == ",", word
    caption = "a large orange star on the right and a small black circle in the center, white background"
    assert len(clip(caption).input_ids) == len(caption.replace(",", " ,").split()) + 2
    chi = "\n".join(A.sana_instruction())
    ids = gemma(chi + caption).input_ids
    assert ids[0] == gemma.bos_token_id and gemma.unk_token_id not in ids
    assert not [t for t in gemma.convert_ids_to_tokens(ids) if t.startswith("<0x")]  # no byte fallback needed
    assert len(ids) < 300


def test_the_shipped_models_fit_the_size_budget():
    table = A.parameter_table(A.FULL)
    assert set(table) == {"sd/text_encoder", "sd/vae", "sd/unet", "controlnet-canny", "sana/text_encoder",
                          "sana/vae", "sana/transformer"}
    assert sum(table.values()) * 2 <= 25e6  # fp16 bytes


def test_prepared_tokenizer_answers_only_calls_it_foresaw(tmp_path):
    from transformers import CLIPTokenizer

    A.write_clip_tokenizer(tmp_path, 77)
    tok = train.PreparedTokenizer(CLIPTokenizer.from_pretrained(tmp_path))
    answer = tok.ahead("__call__", ["a red star"], padding="max_length", max_length=77)
    assert tok.misses == 0 and not tok._ready  # answered, but kept only once provided
    tok.provide([answer, answer])
    first = tok(["a red star"], padding="max_length", max_length=77)
    assert tok(["a red star"], padding="max_length", max_length=77) is first and tok.misses == 0
    again = tok(["a red star"], padding="max_length", max_length=77)  # used up: asked of the tokenizer
    assert again.input_ids == first.input_ids and tok.misses == 1
    tok.padding_side = "left"
    assert tok._tokenizer.padding_side == "left"


def test_the_time_split_and_captions_dropout():
    assert train._parse_split(None, ["vae", "sd"]) == {"vae": train.WEIGHTS["vae"], "sd": train.WEIGHTS["sd"]}
    assert train._parse_split("sd=2", ["vae", "sd"])["sd"] == 2.0
    with pytest.raises(SystemExit):
        train._parse_split("sana=1", ["vae"])
    assert train.drop_captions(["a"] * 10, 0.1) == ["a"] * 9 + [""]
    assert train._lr_factor(0, 100, 1.0) == pytest.approx(0.01) and train._lr_factor(500, 100, 0.1) == 0.5


def test_exported_folders_seed_a_new_work_folder(trained, tmp_path, capsys):
    """--init-from: a new session continues from shipped (fp16) models, whose checkpoints stayed behind."""
    out = trained[1]
    train.main(["--init-from", str(out), "--stage", "controlnet", "--work", str(tmp_path), "--tiny", "--steps", "1",
                "--device", "cpu"])
    log = capsys.readouterr().out
    assert "no checkpoint: starting from the finished controlnet" in log
    for name in ("vae", "tokenizer", "text_encoder", "unet", "controlnet", "dcae", "gemma_tokenizer", "gemma",
                 "transformer"):
        assert (tmp_path / "models" / name).is_dir(), name
    config = json.loads((tmp_path / "models" / "unet" / "config.json").read_text())
    assert config["_class_name"] == "UNet2DConditionModel"
    assert json.loads((tmp_path / "controlnet" / "ckpt" / "state.json").read_text())["step"] == 1


def test_parallel_trains_the_two_branches_in_their_own_processes(tmp_path, capfd):
    work = tmp_path / "work"
    train.main(["--stage", "all", "--parallel", "--work", str(work), "--tiny", "--steps", "1", "--device", "cpu",
                "--export", "--out", str(tmp_path / "out")])
    for stage in train.STAGES:
        assert json.loads((work / stage / "ckpt" / "state.json").read_text())["step"] == 1, stage
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(train.EXPORTS)
    logged = capfd.readouterr().out
    assert logged.count("[train] vae, sd, controlnet on cpu") == 1 and logged.count("[train] dcae, sana on cpu") == 1


def test_parallel_reports_a_branch_that_fails(tmp_path):
    with pytest.raises(SystemExit, match="training failed for sd"):
        train.main(["--stage", "sd,sana", "--parallel", "--work", str(tmp_path), "--tiny", "--steps", "1",
                    "--device", "cpu"])


def test_data_workers_train_the_same_weights_as_preparing_in_the_loop(tmp_path, capfd):
    """Batches prepared in forked worker processes arrive in step order with their tokenizer answers:
    the trained weights are bit for bit those of a run that prepares every batch itself."""
    from safetensors.torch import load_file

    checkpoints = {"sd": "unet", "controlnet": "controlnet", "sana": "transformer"}

    def trained(work, steps, workers):
        train.main(["--stage", "all", "--work", str(work), "--tiny", "--steps", str(steps), "--device", "cpu",
                    "--workers", str(workers)])
        return {stage: load_file(work / stage / "ckpt" / f"{net}.safetensors") for stage, net in checkpoints.items()}

    def same(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    in_loop = trained(tmp_path / "in-loop", 3, 0)
    in_workers = trained(tmp_path / "workers", 3, 2)
    misses = re.findall(r"tok-misses (\d+)", capfd.readouterr().out)
    assert misses and set(misses) == {"0"}  # every tokenizer call was answered ahead, in both runs
    for stage in checkpoints:
        assert same(in_loop[stage], in_workers[stage]), stage
    # which is not so whatever the batches: one step fewer gives other weights
    fewer = trained(tmp_path / "fewer", 2, 2)
    for stage in checkpoints:
        assert not same(in_loop[stage], fewer[stage]), stage
