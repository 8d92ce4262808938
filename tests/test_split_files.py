"""Lone component files (ComfyUI's models/unet, models/clip, models/vae) in their original key layouts: loaded by
Load Diffusion Model, Load Text Encoder and Load VAE, they draw the picture the same tiny model draws from its
diffusers folder."""

import json
import shutil

import pytest
import torch

import nodegraph
from nodes import _split_files

import split_layouts as layouts
from test_diffusion_families import flux_folder, sd3_folder, sdxl_folder  # noqa: F401 (fixtures)
from test_diffusion_sd import NEGATIVE, PROMPT, sd_folder  # noqa: F401 (fixture)


def graph(denoiser: dict, text: dict, vae: dict, cfg=5.0, steps=3):
    """Load Diffusion Model + Load Text Encoder + Load VAE -> Text Condition -> Sampler -> VAE Decode."""
    wf = nodegraph.Workflow()
    wf.add_node("model.denoiser", "unet", params={k: str(v) for k, v in denoiser.items()})
    wf.add_node("model.text_encoder", "clip", params={k: str(v) for k, v in text.items()})
    wf.add_node("model.vae", "vae", params={k: str(v) for k, v in vae.items()})
    wf.add_node("cond.text", "text", params={"prompt": PROMPT, "negative": NEGATIVE})
    wf.add_node("latent.empty", "empty", params={"width": 32, "height": 32, "batch_size": 1})
    wf.add_node("sampling.sampler", "sampler", params={"seed": 7, "steps": steps, "cfg": cfg})
    wf.add_node("vae.decode", "decode")
    for src, out, dst, inp in [("clip", "text_encoder", "text", "text_encoder"), ("vae", "vae", "empty", "vae"),
                               ("unet", "model", "sampler", "model"), ("text", "conditioning", "sampler", "conditioning"),
                               ("empty", "latent", "sampler", "latent"), ("vae", "vae", "decode", "vae"),
                               ("sampler", "latent", "decode", "latent")]:
        wf.connect(src, out, dst, inp)
    return wf


def run(wf, target="decode"):
    return nodegraph.Engine(device="cpu").run(wf, targets=[target])


def from_folder(folder, denoiser="unet", cfg=5.0):
    """The reference: the same components loaded from the diffusers folder by the same three nodes."""
    wf = graph({"model": folder / denoiser}, {"model": folder}, {"model": folder / "vae"}, cfg=cfg)
    return run(wf).outputs["decode"]["image"]


def pipeline(folder):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(folder, local_files_only=True)


@pytest.fixture(scope="module")
def sd_files(sd_folder, tmp_path_factory):  # noqa: F811
    """SD 1.5 as split files, in both layouts people have: LDM prefixes, and ComfyUI's bare keys."""
    pipe, out = pipeline(sd_folder), tmp_path_factory.mktemp("sd-files")
    return {
        "ldm": (layouts.save(layouts.unet_keys(pipe.unet), out / "unet-ldm.safetensors"),
                layouts.save(layouts.clip_keys(pipe.text_encoder), out / "clip_l.safetensors"),
                layouts.save(layouts.vae_keys(pipe.vae, "first_stage_model."), out / "vae-ldm.safetensors")),
        "bare": (layouts.save(layouts.unet_keys(pipe.unet, prefix=""), out / "unet.safetensors"),
                 layouts.save(layouts.clip_keys(pipe.text_encoder, prefixed=False), out / "clip_l_v5.safetensors"),
                 layouts.save(layouts.vae_keys(pipe.vae), out / "vae.safetensors")),
    }


@pytest.mark.parametrize("layout", ["ldm", "bare"])
def test_sd15_split_files_draw_the_folders_picture(sd_files, sd_folder, layout):  # noqa: F811
    unet, clip, vae = sd_files[layout]
    result = run(graph({"model": unet, "config": sd_folder}, {"model": clip, "config": sd_folder},
                       {"model": vae, "config": sd_folder}))
    assert result.outputs["unet"]["model"].family == "sd" and result.outputs["clip"]["text_encoder"].family == "sd"
    torch.testing.assert_close(result.outputs["decode"]["image"], from_folder(sd_folder), rtol=1e-5, atol=1e-5)


def test_sdxl_unet_and_two_clips_are_recognised_and_draw_the_folders_picture(sdxl_folder, tmp_path):  # noqa: F811
    pipe = pipeline(sdxl_folder)
    unet = layouts.save(layouts.unet_keys(pipe.unet, prefix=""), tmp_path / "sdxl-unet.safetensors")
    clip_l = layouts.save(layouts.clip_keys(pipe.text_encoder), tmp_path / "clip_l.safetensors")
    clip_g = layouts.save(layouts.clip_keys(pipe.text_encoder_2), tmp_path / "clip_g.safetensors")
    vae = layouts.save(layouts.vae_keys(pipe.vae), tmp_path / "sdxl_vae.safetensors")
    result = run(graph({"model": unet, "config": sdxl_folder},
                       {"model": clip_l, "model_2": clip_g, "config": sdxl_folder},
                       {"model": vae, "config": sdxl_folder}))
    assert result.outputs["unet"]["model"].family == "sdxl"
    text = result.outputs["clip"]["text_encoder"]
    assert text.family == "sdxl" and set(text.components) == {"text_encoder", "text_encoder_2", "tokenizer",
                                                              "tokenizer_2"}
    torch.testing.assert_close(result.outputs["decode"]["image"], from_folder(sdxl_folder), rtol=1e-5, atol=1e-5)


def test_sd3_transformer_in_its_layout_and_three_text_encoders_draw_the_folders_picture(sd3_folder, tmp_path):  # noqa: F811
    pipe = pipeline(sd3_folder)
    mmdit = layouts.save(layouts.sd3_keys(pipe.transformer.state_dict(), pipe.transformer.config.num_layers),
                         tmp_path / "sd3_medium.safetensors")
    clips = [layouts.save(layouts.clip_keys(m), tmp_path / f"{n}.safetensors")
             for m, n in ((pipe.text_encoder, "clip_l"), (pipe.text_encoder_2, "clip_g"))]
    t5 = layouts.save(layouts.t5_keys(pipe.text_encoder_3), tmp_path / "t5xxl_fp16.safetensors")
    vae = layouts.save(layouts.vae_keys(pipe.vae), tmp_path / "sd3_vae.safetensors")
    result = run(graph({"model": mmdit, "config": sd3_folder},
                       {"model": clips[0], "model_2": clips[1], "model_3": t5, "config": sd3_folder},
                       {"model": vae, "config": sd3_folder}))
    assert result.outputs["unet"]["model"].family == "sd3" and result.outputs["clip"]["text_encoder"].family == "sd3"
    torch.testing.assert_close(result.outputs["decode"]["image"], from_folder(sd3_folder, "transformer"),
                               rtol=1e-5, atol=1e-5)


def flux_config_without_t5_tokenizer(flux_folder, folder):  # noqa: F811
    """flux_folder's configs and CLIP tokenizer, but no tokenizer_2: T5's tokenizer must be found elsewhere."""
    for item in flux_folder.rglob("*"):
        rel = item.relative_to(flux_folder)
        if item.is_file() and not rel.parts[0] == "tokenizer_2" and not item.name.endswith(".safetensors"):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(item, folder / rel)
    return folder


@pytest.fixture(scope="module")
def flux_files(flux_folder, tmp_path_factory):  # noqa: F811
    pipe, out = pipeline(flux_folder), tmp_path_factory.mktemp("flux-files")
    return {
        "transformer": layouts.save(layouts.flux_keys(pipe.transformer.state_dict()), out / "flux1-dev.safetensors"),
        "clip_l": layouts.save(layouts.clip_keys(pipe.text_encoder), out / "clip_l.safetensors"),
        "t5": layouts.save(layouts.t5_keys(pipe.text_encoder_2), out / "t5xxl_fp16.safetensors"),
        "ae": layouts.save(layouts.vae_keys(pipe.vae), out / "ae.safetensors"),
        "config": flux_config_without_t5_tokenizer(flux_folder, out / "config"),
        "tokenizer": flux_folder / "tokenizer_2",
    }


def test_flux_in_bfl_layout_with_clip_l_t5_and_ae_draws_the_folders_picture(flux_files, flux_folder):  # noqa: F811
    f = flux_files
    beside = f["t5"].parent / "t5xxl_fp16.tokenizer"  # one of the places T5's tokenizer is looked for
    shutil.copytree(f["tokenizer"], beside)
    try:
        result = run(graph({"model": f["transformer"], "config": flux_folder},
                           {"model": f["clip_l"], "model_2": f["t5"], "config": f["config"]},
                           {"model": f["ae"], "config": flux_folder}, cfg=3.5))
    finally:
        shutil.rmtree(beside)
    assert result.outputs["unet"]["model"].family == "flux" and result.outputs["clip"]["text_encoder"].family == "flux"
    torch.testing.assert_close(result.outputs["decode"]["image"], from_folder(flux_folder, "transformer", cfg=3.5),
                               rtol=1e-5, atol=1e-5)


def test_without_a_config_the_shipped_real_size_one_is_used_and_a_mismatch_is_explained(flux_files, sd_files):
    for path, what in ((flux_files["transformer"], "FluxTransformer2DModel"), (sd_files["bare"][0], "UNet2DConditionModel")):
        with pytest.raises(nodegraph.NodeFailed) as info:  # tiny weights cannot fill the real architectures
            run(graph({"model": path}, {"model": "x"}, {"model": "x"}), "unet")
        assert f"cannot load {path.name} as a {what} with the config in" in str(info.value)


def test_a_missing_t5_tokenizer_is_named_and_the_hf_cache_supplies_it(flux_files, tmp_path, monkeypatch):
    import huggingface_hub.constants

    wf = graph({"model": flux_files["transformer"]}, {"model": flux_files["clip_l"], "model_2": flux_files["t5"],
                                                      "config": flux_files["config"]}, {"model": flux_files["ae"]})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(nodegraph.NodeFailed) as info:
        run(wf, "clip")
    message = str(info.value)
    assert "no tokenizer for the T5 text encoder t5xxl_fp16.safetensors" in message
    assert str(flux_files["t5"].parent / "t5xxl_fp16.tokenizer") in message
    assert "black-forest-labs/FLUX.1-dev (tokenizer_2)" in message
    repo = tmp_path / "hub" / "models--black-forest-labs--FLUX.1-dev"  # a snapshot as huggingface_hub lays it out
    shutil.copytree(flux_files["tokenizer"], repo / "snapshots" / "0123abc" / "tokenizer_2")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    text = run(wf, "clip").outputs["clip"]["text_encoder"]
    assert type(text.components["tokenizer_2"]).__name__.startswith("T5Tokenizer")


def test_fp8_files_stay_fp8_in_memory_and_sample(flux_folder, flux_files, tmp_path):  # noqa: F811
    pipe = pipeline(flux_folder)
    fp8 = torch.float8_e4m3fn
    transformer = layouts.save(layouts.flux_keys(pipe.transformer.state_dict()), tmp_path / "flux1-dev-fp8.safetensors",
                               dtype=fp8)
    t5 = layouts.save(layouts.t5_keys(pipe.text_encoder_2), tmp_path / "t5xxl_fp8_e4m3fn.safetensors", dtype=fp8)
    shutil.copytree(flux_folder / "tokenizer_2", tmp_path / "tokenizer")  # "a tokenizer/ folder beside it"
    result = run(graph({"model": transformer, "config": flux_folder},
                       {"model": flux_files["clip_l"], "model_2": t5, "config": flux_files["config"]},
                       {"model": flux_files["ae"], "config": flux_folder}, cfg=3.5))
    denoiser = result.outputs["unet"]["model"].denoiser
    encoder = result.outputs["clip"]["text_encoder"].components["text_encoder_2"]
    assert denoiser.transformer_blocks[0].attn.to_q.weight.dtype == fp8
    assert denoiser.single_transformer_blocks[0].proj_mlp.weight.dtype == fp8
    assert encoder.encoder.block[0].layer[0].SelfAttention.q.weight.dtype == fp8
    image = result.outputs["decode"]["image"]
    assert image.shape == (1, 3, 32, 32) and torch.isfinite(image).all()
    reference = from_folder(flux_folder, "transformer", cfg=3.5)  # fp8 weights: close to the fp32 picture, not equal
    assert (image - reference).abs().mean() < 0.1


def test_our_flux_conversion_equals_diffusers_at_flux_width():
    """diffusers' converter only handles Flux's real width (3072); ours must give its result there. Every tensor
    has its real number of rows (the dimension split and swapped) and one column, so this costs nothing."""
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    width, rows = 3072, {"qkv": 3 * 3072, "linear1": 3 * 3072 + 4 * 3072, "adaLN_modulation": 2 * 3072,
                         "mod": 6 * 3072}
    keys = [f"{stem}.{p}" for stem in ("time_in.in_layer", "time_in.out_layer", "vector_in.in_layer",
                                       "vector_in.out_layer", "guidance_in.in_layer", "guidance_in.out_layer",
                                       "txt_in", "img_in", "final_layer.linear", "final_layer.adaLN_modulation.1",
                                       "double_blocks.0.img_mod.lin", "double_blocks.0.txt_mod.lin",
                                       "double_blocks.0.img_attn.qkv", "double_blocks.0.txt_attn.qkv",
                                       "double_blocks.0.img_attn.proj", "double_blocks.0.txt_attn.proj",
                                       "double_blocks.0.img_mlp.0", "double_blocks.0.img_mlp.2",
                                       "double_blocks.0.txt_mlp.0", "double_blocks.0.txt_mlp.2",
                                       "single_blocks.0.modulation.lin", "single_blocks.0.linear1",
                                       "single_blocks.0.linear2") for p in ("weight", "bias")]
    keys += [f"{b}.norm.{n}_norm.scale" for b in ("double_blocks.0.img_attn", "double_blocks.0.txt_attn",
                                                  "single_blocks.0") for n in ("query", "key")]
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(next((n for part, n in rows.items() if part in k), 64), 1, generator=g) for k in keys}
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(state))
    ours = _split_files.flux_to_diffusers(dict(state), width)
    assert ours.keys() == theirs.keys()
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0, msg=k)


def _meta_shapes(model) -> dict:
    return {k: (tuple(v.shape), "F16") for k, v in model.state_dict().items()}


def test_real_text_encoders_are_told_apart_by_their_shapes(tmp_path):
    import transformers

    configs = _split_files.CONFIGS
    with torch.device("meta"):
        clip_l = transformers.CLIPTextModel(transformers.CLIPTextConfig.from_pretrained(configs / "sd15/text_encoder"))
        clip_g = transformers.CLIPTextModelWithProjection(
            transformers.CLIPTextConfig.from_pretrained(configs / "sdxl/text_encoder_2"))
        t5 = transformers.T5EncoderModel(transformers.T5Config.from_pretrained(configs / "flux/text_encoder_2"))
    heads = {"clip_l": _meta_shapes(clip_l), "clip_g": _meta_shapes(clip_g), "t5": _meta_shapes(t5)}
    for kind, head in heads.items():
        assert _split_files.text_kind(tmp_path / f"{kind}.safetensors", head) == kind
    v5 = {k.removeprefix("text_model."): v for k, v in heads["clip_g"].items()}  # transformers 5's saved names
    assert _split_files.text_kind(tmp_path / "g.safetensors", v5) == "clip_g"
    files = {k: (tmp_path / f"{k}.safetensors", k) for k in heads}
    for family, kinds in {"sd": ["clip_l"], "sdxl": ["clip_g", "clip_l"], "flux": ["t5", "clip_l"],
                          "sd3": ["t5", "clip_g", "clip_l"]}.items():
        assert _split_files.text_family([files[k] for k in kinds], "auto")[0] == family
    with pytest.raises(nodegraph.NodeUserError, match=r"family 'flux' takes CLIP-L \+ T5-XXL; the files are CLIP-L"):
        _split_files.text_family([files["clip_l"], files["clip_g"]], "flux")


def test_a_lone_vaes_family_comes_from_its_channels_and_name(tmp_path):
    def head(channels):
        return {"encoder.down.0.block.0.conv1.weight": ((128, 3, 3, 3), "F16"),
                "encoder.conv_out.weight": ((2 * channels, 512, 3, 3), "F16")}

    assert _split_files.vae_family(tmp_path / "vae-ft-mse-840000.safetensors", head(4), "auto") == "sd"
    assert _split_files.vae_family(tmp_path / "sdxl_vae.safetensors", head(4), "auto") == "sdxl"
    assert _split_files.vae_family(tmp_path / "ae.safetensors", head(16), "auto") == "flux"
    assert _split_files.vae_family(tmp_path / "sd3_vae.safetensors", head(16), "auto") == "sd3"
    assert _split_files.vae_family(tmp_path / "ae.safetensors", head(16), "sd3") == "sd3"


PUBLISHED_PARAMETERS = {  # the real models' sizes: the shipped configs must build exactly these
    ("flux", "transformer"): 11_901_408_320, ("flux", "vae"): 83_819_683, ("flux", "text_encoder"): 123_060_480,
    ("flux", "text_encoder_2"): 4_762_310_656,
    ("sd3", "transformer"): 2_028_328_000, ("sd3", "vae"): 83_819_683, ("sd3", "text_encoder"): 123_650_304,
    ("sd3", "text_encoder_2"): 694_659_840, ("sd3", "text_encoder_3"): 4_762_310_656,
}


@pytest.mark.parametrize("kind", ["flux", "sd3"])
def test_shipped_configs_build_the_published_architectures(kind):
    import diffusers
    import transformers

    folder = _split_files.CONFIGS / kind
    index = json.loads((folder / "model_index.json").read_text())
    for (k, part), expected in PUBLISHED_PARAMETERS.items():
        if k != kind:
            continue
        library, class_name = index[part]
        with torch.device("meta"):
            if library == "diffusers":
                cls = getattr(diffusers, class_name)
                model = cls.from_config(cls.load_config(folder / part))
            else:
                cls = getattr(transformers, class_name)
                model = cls(cls.config_class.from_pretrained(folder / part))
        assert sum(p.numel() for p in model.parameters()) == expected, part
    vae = json.loads((folder / "vae" / "config.json").read_text())
    assert (vae["latent_channels"], vae["scaling_factor"], vae["shift_factor"]) == \
        {"flux": (16, 0.3611, 0.1159), "sd3": (16, 1.5305, 0.0609)}[kind]
    tokenizers = {"flux": {"tokenizer": "<|endoftext|>"}, "sd3": {"tokenizer": "<|endoftext|>", "tokenizer_2": "!"}}
    for name, pad in tokenizers[kind].items():  # CLIP-G pads with "!", as in diffusers' SDXL and SD3 configs
        assert json.loads((folder / name / "tokenizer_config.json").read_text())["pad_token"] == pad


@pytest.mark.parametrize("node, param", [("unet", "model"), ("clip", "model"), ("vae", "model")])
def test_pickles_are_refused_and_unknown_keys_are_explained(tmp_path, node, param):
    from safetensors.torch import save_file

    (tmp_path / "model.ckpt").write_bytes(b"never unpickled")
    save_file({"hello.weight": torch.zeros(2)}, tmp_path / "odd.safetensors")
    params = {"unet": {"model": "x"}, "clip": {"model": "x"}, "vae": {"model": "x"}}
    for name, expected in (("model.ckpt", "convert it to .safetensors"),
                           ("odd.safetensors", {"unet": "odd.safetensors: not a diffusion model this program knows",
                                                "clip": "odd.safetensors: not a text encoder this program knows",
                                                "vae": "odd.safetensors: not a VAE this program knows"}[node])):
        params[node][param] = tmp_path / name
        wf = graph(params["unet"], params["clip"], params["vae"])
        with pytest.raises(nodegraph.NodeFailed) as info:
            run(wf, node)
        assert expected in str(info.value)
