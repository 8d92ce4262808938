"""Our Sampler node against diffusers' own pipeline loop, on a GPU, at real model sizes with random weights.

    python bench/bench_sampler.py [--only sd15,sdxl,sana,vae] [--repeat 3] [--compile]
    python bench/bench_sampler.py --smoke     # the same harness on the CPU with small models (no timings worth keeping)

For each family the same modules, prompt embeddings, scheduler, seed and size go to (a) the diffusers
pipeline with ``output_type="latent"`` and (b) our Sampler node run by the engine (everything upstream
cached, so the timed run executes the Sampler alone). With ``--compile``, the Sampler's compile modes are
timed too (the first run, which compiles, is reported separately). Random weights are built from each
model's published configuration straight on the GPU: nothing is downloaded. Times are medians, seconds
per image, CUDA-synchronised.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nodegraph  # noqa: E402
from nodegraph import Output, Param, PortType as T, node  # noqa: E402
from nodes._diffusion_types import Conditioning, DiffusionModel, Latent  # noqa: E402
from nodes.models import make_vae, scheduler_config  # noqa: E402

GIVEN: dict[str, object] = {}  # values handed to the graph by the bench.given node
DEVICE = "cuda"
SMALL = False  # --smoke: narrow models, small pictures, CPU


def sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@node("bench.given", title="Given", category="bench", params=[Param("key", T.STRING, "")],
      outputs=[Output("model", T.MODEL), Output("conditioning", T.CONDITIONING), Output("latent", T.LATENT),
               Output("vae", T.VAE)])
def given(ctx, key):
    return GIVEN[key]


def sd_scheduler_config():
    from diffusers import EulerDiscreteScheduler

    return scheduler_config(EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                   steps_offset=1, timestep_spacing="leading"))


def kl_vae(dtype):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                         sample_size=1024, scaling_factor=0.18215).to(dtype).eval()


def build(family: str, dtype):
    """Modules at real sizes with random weights, plus prompt embeddings of the right shapes."""
    from diffusers import SanaTransformer2DModel, UNet2DConditionModel

    g = torch.Generator(DEVICE).manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g, device=DEVICE, dtype=dtype) * 0.5  # noqa: E731
    w = 8 if SMALL else 1  # channel divisor for --smoke
    if family == "sd15":
        unet = UNet2DConditionModel(
            sample_size=64, block_out_channels=(320 // w, 640 // w, 1280 // w, 1280 // w), layers_per_block=2,
            cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32 // w if SMALL else 32,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
        model = DiffusionModel("sd", unet.to(dtype).eval(), sd_scheduler_config(), "random SD1.5 UNet")
        pos, neg = {"prompt_embeds": rand(1, 77, 768)}, {"prompt_embeds": rand(1, 77, 768)}
        return model, Conditioning("sd", pos, neg), 64 if SMALL else 512, 7.5
    if family == "sdxl":
        unet = UNet2DConditionModel(
            sample_size=128, block_out_channels=(320 // w, 640 // w, 1280 // w), layers_per_block=2,
            norm_num_groups=32 // w if SMALL else 32, transformer_layers_per_block=(1, 2, 2 if SMALL else 10),
            attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
        model = DiffusionModel("sdxl", unet.to(dtype).eval(), sd_scheduler_config(), "random SDXL UNet")
        pos = {"prompt_embeds": rand(1, 77, 2048), "text_embeds": rand(1, 1280)}
        neg = {"prompt_embeds": rand(1, 77, 2048), "text_embeds": rand(1, 1280)}
        return model, Conditioning("sdxl", pos, neg), 64 if SMALL else 1024, 5.0
    if family == "sana":
        from diffusers import DPMSolverMultistepScheduler

        transformer = SanaTransformer2DModel(
            in_channels=32, out_channels=32, num_attention_heads=70 // (10 if SMALL else 1), attention_head_dim=32,
            num_layers=2 if SMALL else 20,
            num_cross_attention_heads=2 if SMALL else 20, cross_attention_head_dim=112,
            cross_attention_dim=224 if SMALL else 2240,  # = heads x head size of the transformer
            caption_channels=2304, mlp_ratio=2.5, sample_size=32, patch_size=1)
        config = scheduler_config(DPMSolverMultistepScheduler(flow_shift=3.0, use_flow_sigmas=True,
                                                              prediction_type="flow_prediction"))
        model = DiffusionModel("sana", transformer.to(dtype).eval(), config, "random Sana 1.6B")
        mask = torch.ones(1, 300, device=DEVICE, dtype=torch.int64)
        pos = {"prompt_embeds": rand(1, 300, 2304), "encoder_attention_mask": mask}
        neg = {"prompt_embeds": rand(1, 300, 2304), "encoder_attention_mask": mask}
        return model, Conditioning("sana", pos, neg), 128 if SMALL else 1024, 4.5
    raise ValueError(family)


def diffusers_call(family, model, cond, size, steps, cfg, seed):
    import diffusers  # no VAE: both sides stop at the latent

    scheduler = getattr(diffusers, model.scheduler_config["_class_name"]).from_config(model.scheduler_config)
    def common():  # a fresh generator on every call, so every call samples from the same seed
        return dict(num_inference_steps=steps, guidance_scale=cfg, height=size, width=size, output_type="latent",
                    generator=torch.Generator("cpu").manual_seed(seed))
    if family == "sd15":
        pipe = diffusers.StableDiffusionPipeline(vae=None, text_encoder=None,
                                                 tokenizer=None, unet=model.denoiser, scheduler=scheduler,
                                                 safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
        return lambda: pipe(prompt_embeds=cond.positive["prompt_embeds"],
                            negative_prompt_embeds=cond.negative["prompt_embeds"], **common()).images
    if family == "sdxl":
        pipe = diffusers.StableDiffusionXLPipeline(vae=None, text_encoder=None,
                                                   text_encoder_2=None, tokenizer=None, tokenizer_2=None,
                                                   unet=model.denoiser, scheduler=scheduler)
        return lambda: pipe(prompt_embeds=cond.positive["prompt_embeds"],
                            negative_prompt_embeds=cond.negative["prompt_embeds"],
                            pooled_prompt_embeds=cond.positive["text_embeds"],
                            negative_pooled_prompt_embeds=cond.negative["text_embeds"], **common()).images
    pipe = diffusers.SanaPipeline(tokenizer=None, text_encoder=None, vae=None,
                                  transformer=model.denoiser, scheduler=scheduler)
    return lambda: pipe(prompt_embeds=cond.positive["prompt_embeds"],
                        prompt_attention_mask=cond.positive["encoder_attention_mask"],
                        negative_prompt_embeds=cond.negative["prompt_embeds"],
                        negative_prompt_attention_mask=cond.negative["encoder_attention_mask"],
                        negative_prompt=None, use_resolution_binning=False, **common()).images


def timed(fn, repeat):
    samples, out = [], None
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), out


def bench_family(family, args, rows):
    dtype = torch.float32 if SMALL else torch.bfloat16 if family == "sana" else torch.float16
    with torch.device(DEVICE):
        model, cond, size, cfg = build(family, dtype)
    f = 32 if family == "sana" else 8
    channels = 32 if family == "sana" else 4
    latent = Latent(torch.zeros(1, channels, size // f, size // f, device=DEVICE), channels,
                    meta={"empty": True, "pixel_size": (size, size)})
    GIVEN[family] = {"model": model, "conditioning": cond, "latent": latent, "vae": None}
    wf = nodegraph.Workflow()
    wf.add_node("bench.given", "given", params={"key": family})
    wf.add_node("sampling.sampler", "sampler", params={"steps": args.steps, "cfg": cfg, "seed": 1})
    for port in ("model", "conditioning", "latent"):
        wf.connect("given", port, "sampler", port)
    engine = nodegraph.Engine(device=DEVICE)
    seeds = iter(range(2, 10**6))

    def ours():
        wf.set_param("sampler", "seed", next(seeds))
        result = engine.run(wf, targets=["sampler"])
        assert result.executed == ["sampler"] or result.executed == ["given", "sampler"]
        return result.outputs["sampler"]["latent"].samples

    theirs = diffusers_call(family, model, cond, size, args.steps, cfg, seed=1)
    timed(theirs, 1)  # warm-up: cuDNN autotuning, allocator
    timed(ours, 1)
    t_theirs, ref = timed(theirs, args.repeat)
    t_ours, _ = timed(ours, args.repeat)
    wf.set_param("sampler", "seed", 1)
    same = engine.run(wf, targets=["sampler"]).outputs["sampler"]["latent"].samples
    diff = (same.float() - ref.float()).abs().nan_to_num(0).max().item()
    rows.append((family, f"{size}²", args.steps, "diffusers pipeline", t_theirs, ""))
    rows.append((family, f"{size}²", args.steps, "our Sampler (eager)", t_ours,
                 f"{t_ours / t_theirs:.3f}x diffusers; max |latent diff| {diff:.2e}"))
    if args.compile and family in ("sd15", "sdxl") and not SMALL:
        for mode in ("compile", "compile+cudagraphs"):
            wf.set_param("sampler", "compile", mode)
            first, _ = timed(ours, 1)
            t_c, _ = timed(ours, args.repeat)
            rows.append((family, f"{size}²", args.steps, f"our Sampler ({mode})", t_c,
                         f"{t_ours / t_c:.2f}x faster than eager; first run (compiling) {first:.0f} s"))
        wf.set_param("sampler", "compile", "off")
    GIVEN.clear()  # the modules go when this function returns; main() then empties the CUDA cache


def bench_vae(args, rows):
    from diffusers import AutoencoderDC

    size = 128 if SMALL else 1024
    half, bf16 = (torch.float32, torch.float32) if SMALL else (torch.float16, torch.bfloat16)
    for name, module, f, channels in (("KL (SD/SDXL)", kl_vae(half), 8, 4),
                                      ("DC-AE f32c32 (Sana)", AutoencoderDC(scaling_factor=0.41407).to(bf16), 32, 32)):
        vae = make_vae(module.to(DEVICE))
        latent = Latent(torch.randn(1, channels, size // f, size // f, device=DEVICE), channels)
        GIVEN["vae"] = {"model": None, "conditioning": None, "latent": latent, "vae": vae}
        wf = nodegraph.Workflow()
        wf.add_node("bench.given", "given", params={"key": "vae"})
        wf.add_node("vae.decode", "decode")
        wf.connect("given", "vae", "decode", "vae")
        wf.connect("given", "latent", "decode", "latent")
        engine = nodegraph.Engine(device=DEVICE)
        tiles = iter(range(10**6))

        def decode():
            wf.set_param("decode", "tile_size", 64 * (1 + next(tiles) % 60))  # a new key, same untiled work
            return engine.run(wf, targets=["decode"]).outputs["decode"]["image"]

        timed(decode, 2)
        t, image = timed(decode, args.repeat)
        rows.append(("vae", f"{size}²", "-", f"decode {name}", t, f"{tuple(image.shape)}"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="sd15,sdxl,sana,vae")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="check the harness on the CPU with small models")
    args = parser.parse_args()
    global DEVICE, SMALL
    if args.smoke:
        DEVICE, SMALL, args.steps, args.repeat = "cpu", True, 3, 1
    elif not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA device (or --smoke to check it on the CPU)")
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for family in args.only.split(","):
        print(f"... {family}", flush=True)
        bench_vae(args, rows) if family == "vae" else bench_family(family, args, rows)
        GIVEN.clear()
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    name = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "CPU (smoke run: small models)"
    print(f"device: {name}, torch {torch.__version__}")
    print(f"{'family':<6} {'size':>6} {'steps':>5}  {'what':<32} {'s/image':>8}  note")
    for family, size, steps, what, seconds, note in rows:
        print(f"{family:<6} {size:>6} {steps!s:>5}  {what:<32} {seconds:8.3f}  {note}")


if __name__ == "__main__":
    main()
