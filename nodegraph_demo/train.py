"""Train the demo models stage by stage, time-boxed and resumable, and export them in diffusers' layouts.

Stages (each reads the finished models of the ones it needs from WORK/models and writes its own there):

    vae         AutoencoderKL, reconstruction                          -> models/vae
    sd          CLIP text encoder + UNet (v, zero terminal SNR) in the VAE's latents -> models/tokenizer, text_encoder, unet
    controlnet  canny ControlNet over the frozen SD models              -> models/controlnet
    dcae        AutoencoderDC, reconstruction                          -> models/dcae
    sana        Gemma-2 + Sana transformer (flow matching) in DC-AE latents -> models/gemma_tokenizer, gemma, transformer

Why the text is encoded as the pipelines' ``encode_prompt`` encodes it (SD: by calling it; Sana: the same
numbers where the transformer looks, computed with less work, see GemmaText): the product's nodes encode
prompts that way at inference (nodes/_families.py), so a model trained on anything else would be
conditioned on embeddings it never sees. Data workers (processes) draw the next batches' scenes and run
the tokenizer calls the encoding is about to make, so the loop that feeds the GPU does not wait on them.

Resuming: WORK/<stage>/ckpt holds weights (safetensors), the EMA, the optimizer state (torch.save of
tensors and numbers, read back with weights_only=True) and the step; the same command continues
from it. A stage stops when its share of ``--minutes`` is used, after ``--steps`` steps, or on
SIGTERM / Ctrl-C, and always saves first.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import itertools
import json
import math
import multiprocessing
import os
import shutil
import signal
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import architectures as A
from . import scenes as S

STAGES = ("vae", "sd", "controlnet", "dcae", "sana")
NEEDS = {"sd": ("vae",), "controlnet": ("vae", "sd"), "sana": ("dcae",)}
WEIGHTS = {"vae": 1.5, "sd": 5.5, "controlnet": 1.5, "dcae": 1.5, "sana": 5.0}  # default split of --minutes
PRODUCTS = {"vae": ("vae",), "sd": ("tokenizer", "text_encoder", "unet"), "controlnet": ("controlnet",),
            "dcae": ("dcae",), "sana": ("gemma_tokenizer", "gemma", "transformer")}
EXPORTS = ("demo-sd", "demo-controlnet-canny", "demo-sana")
BRANCHES = (("vae", "sd", "controlnet"), ("dcae", "sana"))  # no stage of one needs a stage of the other


def log(*parts) -> None:
    print(*parts, flush=True)


@dataclass
class Run:
    """What every stage shares: where, on what, how long."""

    work: Path
    arch: A.Arch
    device: torch.device
    seed: int = 0
    batch: int | None = None
    log_every: int = 50
    save_every: float = 120.0  # seconds between checkpoints
    max_steps: int | None = None
    warmup: int = 100
    probe: tuple[int, int] = (4, 64)  # held-out batches x pictures that set a VAE's scaling factor
    compile: bool = False
    lr_scale: float = 1.0
    workers: int = 0  # data worker processes
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def models(self) -> Path:
        return self.work / "models"

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cuda)

    def generator(self, stage: str, step: int) -> torch.Generator:
        """The device generator of one step: resuming at a step draws the same noise as not stopping."""
        digest = hashlib.blake2b(f"{stage}/{self.seed}/{step}".encode(), digest_size=8).digest()
        return torch.Generator(self.device).manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


# ----- files -----

def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; the old one is removed only after the new one is there."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _fresh_tmp(final: Path) -> Path:
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    return tmp


def save_pretrained(model, folder: Path) -> None:
    tmp = _fresh_tmp(folder)
    model.save_pretrained(tmp)
    _replace_dir(tmp, folder)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _stage_done(run: Run, stage: str) -> bool:
    return all((run.models / name).is_dir() for name in PRODUCTS[stage])


def _frozen(model, run: Run):
    model = model.to(run.device).eval().requires_grad_(False)
    return model.to(memory_format=torch.channels_last) if run.cuda and _is_conv(model) else model


def _is_conv(model) -> bool:
    return type(model).__name__ in ("AutoencoderKL", "AutoencoderDC", "UNet2DConditionModel", "ControlNetModel")


# ----- tokenizer calls prepared ahead -----

def _freeze(value):
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


class PreparedTokenizer:
    """Stands in for a pipeline's tokenizer: calls answered ahead (``ahead``, in a data worker) and handed in
    with ``provide`` are answered from there when the pipeline makes the same call; any other call goes to
    the tokenizer. Answers are the tokenizer's own, so a call not foreseen costs time, never correctness."""

    def __init__(self, tokenizer):
        object.__setattr__(self, "_tokenizer", tokenizer)
        object.__setattr__(self, "_ready", {})
        object.__setattr__(self, "misses", 0)
        # Read on every word by TextualInversionLoaderMixin; it changes only if tokens are added.
        object.__setattr__(self, "added_tokens_encoder", dict(tokenizer.added_tokens_encoder))

    def _call(self, method: str, args, kwargs):
        return getattr(self._tokenizer, method)(*args, **kwargs)

    def ahead(self, method: str, *args, **kwargs) -> tuple:
        """(the call, its answer) for a call the pipeline is going to make."""
        return (method, _freeze(args), _freeze(kwargs)), self._call(method, args, kwargs)

    def provide(self, answers) -> None:
        for key, value in answers:
            if key in self._ready:
                self._ready[key][1] += 1
            else:
                self._ready[key] = [value, 1]

    def _answer(self, method: str, args, kwargs):
        key = (method, _freeze(args), _freeze(kwargs))
        entry = self._ready.get(key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                del self._ready[key]
            return entry[0]
        object.__setattr__(self, "misses", self.misses + 1)
        return self._call(method, args, kwargs)

    def __call__(self, *args, **kwargs):
        return self._answer("__call__", args, kwargs)

    def tokenize(self, *args, **kwargs):
        return self._answer("tokenize", args, kwargs)

    def encode(self, *args, **kwargs):
        return self._answer("encode", args, kwargs)

    def __len__(self):
        return len(self._tokenizer)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __setattr__(self, name, value):
        setattr(self._tokenizer, name, value)


def text_pipeline(class_name: str, **given):
    """A diffusers pipeline holding only the text components (the rest None), to call its encode_prompt;
    the same construction as nodes/_families.partial_pipeline, which the product's Text node uses."""
    import diffusers

    cls = getattr(diffusers, class_name)
    others = {name: None for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != "self" and name not in given and p.default is inspect.Parameter.empty}
    return cls(**others, **given)


def sana_max_sequence_length() -> int:
    from diffusers import SanaPipeline

    return inspect.signature(SanaPipeline.encode_prompt).parameters["max_sequence_length"].default


class ClipText:
    """SD prompts -> embeddings through StableDiffusionPipeline.encode_prompt."""

    def __init__(self, tokenizer, text_encoder):
        self.tokenizer = PreparedTokenizer(tokenizer)
        self.pipe = text_pipeline("StableDiffusionPipeline", text_encoder=text_encoder, tokenizer=self.tokenizer,
                                  safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    def ahead(self, prompts: list[str]) -> list:
        """The tokenizer calls encode_prompt(prompts) will make, answered (in a data worker)."""
        tok = self.tokenizer
        return [tok.ahead("__call__", prompts, padding="max_length", max_length=tok.model_max_length,
                          truncation=True, return_tensors="pt"),
                tok.ahead("__call__", prompts, padding="longest", return_tensors="pt"),
                *(tok.ahead("tokenize", p) for p in prompts)]  # TextualInversionLoaderMixin.maybe_convert_prompt

    def __call__(self, prompts: list[str], device) -> torch.Tensor:
        embeds, _ = self.pipe.encode_prompt(prompts, device, 1, False)
        return embeds


class GemmaText:
    """Sana prompts -> (embeddings, mask) as SanaPipeline.encode_prompt makes them at inference: a prompt with
    SanaPipeline's default complex_human_instruction in front; an empty (dropped) prompt without it, the way
    encode_prompt encodes the negative prompt that classifier-free guidance uses.

    Why not call encode_prompt itself, as ClipText does: it runs Gemma over the instruction (210 tokens) and
    the padding up to 508 tokens for every caption, to keep the ~20 tokens the transformer is not masked from.
    Gemma is causal, so the instruction's states are the same for every prompt and padding cannot change the
    tokens before it: here the instruction runs once per batch (its keys and values shared through Gemma's
    cache) and the padding not at all. Where the mask is 1 the result is encode_prompt's, to float rounding
    (tests/test_demo_training.py); where it is 0 it is zero, which the transformer's masked cross-attention
    ignores. On the 2-core CPU, Gemma's forward pass for 32 captions went from 3.4 s to 0.24 s."""

    def __init__(self, tokenizer, text_encoder):
        self.tokenizer = PreparedTokenizer(tokenizer)
        self.tokenizer.padding_side = "right"  # what the pipeline sets before each call
        self.gemma = text_encoder
        self.instruction = A.sana_instruction()
        self.max_length = sana_max_sequence_length()
        self.chi = "\n".join(self.instruction)
        self.chi_tokens = len(tokenizer.encode(self.chi))

    def _calls(self, prompts: list[str]):
        """The tokenizer calls encode_prompt makes for these prompts (empty ones last): (texts, kwargs) for the
        prompts with the instruction in front, then for the empty ones."""
        kept = [self.chi + p.lower().strip() for p in prompts if p]  # _text_preprocessing, then the prefix
        common = dict(padding="max_length", truncation=True, add_special_tokens=True, return_tensors="pt")
        return ((kept, dict(common, max_length=self.chi_tokens + self.max_length - 2)),
                ([""] * (len(prompts) - len(kept)), dict(common, max_length=self.max_length)))

    def ahead(self, prompts: list[str]) -> list:
        """The tokenizer calls for ``prompts``, answered (in a data worker)."""
        return [self.tokenizer.ahead("__call__", texts, **kwargs) for texts, kwargs in self._calls(prompts) if texts]

    def _encode(self, texts: list[str], kwargs: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Gemma's last hidden states for the padded ``texts`` (zero at padding), the common prefix run once;
        and the attention mask, left on the CPU so that nothing here waits for the GPU."""
        tokens = self.tokenizer(texts, **kwargs)
        lengths = tokens.attention_mask.sum(1)
        n = int(lengths.max())
        agree = (tokens.input_ids[:, :n] == tokens.input_ids[:1, :n]).all(0).long()
        shared = min(int(agree.cumprod(0).sum()), int(lengths.min()) - 1)  # each row keeps a token of its own
        ids, mask = tokens.input_ids[:, :n].to(device), tokens.attention_mask[:, :n].to(device)
        if shared > 0:
            head = self.gemma(ids[:1, :shared], use_cache=True)
            cache = head.past_key_values
            cache.batch_repeat_interleave(len(texts))
            tail = self.gemma(ids[:, shared:], attention_mask=mask, past_key_values=cache).last_hidden_state
            hidden = torch.cat([head.last_hidden_state.expand(len(texts), -1, -1).to(tail.dtype), tail], 1)
        else:
            hidden = self.gemma(ids, attention_mask=mask).last_hidden_state
        embeds = hidden.new_zeros(ids.shape[0], tokens.input_ids.shape[1], hidden.shape[2])
        embeds[:, :n] = hidden * mask[:, :, None].to(hidden.dtype)
        return embeds.to(self.gemma.dtype), tokens.attention_mask

    def __call__(self, prompts: list[str], device, trim: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings and masks in the order of ``prompts``; empty prompts must come last. ``trim`` cuts them
        after the last column any prompt uses (about 20 of 300): the transformer's cross-attention gives
        masked tokens no weight, so its prediction is the same, only cheaper."""
        kept = sum(1 for p in prompts if p)
        if any(not p for p in prompts[:kept]):
            raise ValueError("empty prompts must come last")
        (kept_texts, kept_kwargs), (dropped_texts, dropped_kwargs) = self._calls(prompts)
        parts, masks = [], []
        if kept_texts:
            embeds, mask = self._encode(kept_texts, kept_kwargs, device)
            select = [0] + list(range(-self.max_length + 1, 0))  # what encode_prompt keeps of an instructed prompt
            parts.append(embeds[:, select])
            masks.append(mask[:, select])
        if dropped_texts:
            embeds, mask = self._encode(dropped_texts, dropped_kwargs, device)
            parts.append(embeds)
            masks.append(mask)
        embeds, mask = torch.cat(parts), torch.cat(masks)
        if trim:
            keep = int(mask.any(0).nonzero().max()) + 1
            embeds, mask = embeds[:, :keep], mask[:, :keep]
        return embeds, mask.to(device)


def drop_captions(captions: list[str], fraction: float) -> list[str]:
    """The last ``fraction`` of a batch's captions emptied (the scenes are random, so which ones is immaterial):
    the model learns the unconditional prediction that classifier-free guidance needs."""
    k = round(len(captions) * fraction)
    return captions[:len(captions) - k] + [""] * k


# ----- the stages -----

@dataclass
class Prepared:
    """One step's CPU work, done in a data worker: the scenes, their tensors, the captions trained on and the
    tokenizer's answers for them."""

    scenes: list
    tensors: S.SceneTensors
    captions: list[str] | None = None
    answers: list = field(default_factory=list)


class Stage:
    name = ""
    lr = 5e-4
    batch = 128
    ema_decay: float | None = None
    compiled_nets: tuple[str, ...] = ()  # what --compile compiles

    def __init__(self, run: Run):
        self.run = run
        self.device = run.device
        self.arch = run.arch
        self.size = run.arch.image_size
        self.batch = run.batch or self.batch
        self.lr = self.lr * run.lr_scale
        self.modules: dict[str, torch.nn.Module] = {}
        self.compiled: dict[str, Any] = {}

    def net(self, name: str):
        """Module ``name`` as the forward pass calls it: compiled with --compile."""
        return self.compiled[name] if name in self.compiled else self.modules[name]

    def build(self) -> dict[str, torch.nn.Module]:
        """The modules this stage trains, freshly initialised (a checkpoint's weights are loaded after)."""
        raise NotImplementedError

    def prepare(self, step: int) -> Prepared:
        """CPU work for ``step`` (runs in a data worker, which must not touch the GPU)."""
        scenes = S.sample_scenes(self.batch, S.generator_for(self.run.seed, step, "train"))
        return Prepared(scenes, S.scene_tensors(scenes))

    def loss(self, step: int, prepared: Prepared, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def finish(self, modules: dict[str, torch.nn.Module]) -> None:
        """Write the finished models (EMA weights where there is an EMA) to WORK/models."""
        raise NotImplementedError

    def images(self, prepared: Prepared) -> torch.Tensor:
        images, _ = S.render(prepared.tensors, self.size, self.device)
        return images

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Pictures as the autoencoders take them: in [-1, 1], channels-last on a GPU."""
        x = images * 2 - 1
        return x.contiguous(memory_format=torch.channels_last) if self.run.cuda else x


def _edges_l1(a, b):
    """L1 distance between the two pictures' horizontal and vertical differences: keeps edges sharp."""
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def _reconstruction_loss(out, x):
    """What both autoencoders minimise: L1 + L2 to the picture, plus sharp edges."""
    return (out - x).abs().mean() + (out - x).pow(2).mean() + 0.5 * _edges_l1(out, x)


def _scale_and_save(run: Run, name: str, autoencoder, encode) -> None:
    """Set an autoencoder's scaling_factor to 1 / (std of its held-out latents), then save it to WORK/models."""
    z, score = _held_out_latents(run, encode)
    std, mean = float(z.std()), float(z.mean())
    autoencoder.register_to_config(scaling_factor=1.0 / std)
    log(f"[{name}] held-out PSNR {score:.2f} dB; latent mean {mean:.3f} std {std:.3f} -> scaling_factor "
        f"{1 / std:.5f}")
    save_pretrained(autoencoder, run.models / name)


def _held_out_latents(run: Run, encode):
    """Latents (and reconstructions' PSNR) of held-out scenes, to set the VAE's scaling factor."""
    from .evaluate import psnr

    batches, batch = run.probe
    values, scores = [], []
    with torch.no_grad():  # in float32: the figures the shipped (fp16 -> fp32 on a CPU) models will show
        for i in range(batches):
            images = S.scene_batch(batch, seed=run.seed, index=i, split="eval", size=run.arch.image_size,
                                   device=run.device).images
            z, decoded = encode(images * 2 - 1)
            values.append(z.float())
            scores.append(psnr((decoded.float() / 2 + 0.5).clamp(0, 1), images))
    z = torch.cat(values)
    return z, sum(scores) / len(scores)


class VaeStage(Stage):
    name = "vae"
    lr = 1e-3
    batch = 128
    kl_weight = 1e-6

    initial_logvar = -8.0  # start almost deterministic: noisy latents early on only slow the decoder down

    def build(self):
        torch.manual_seed(self.run.seed)
        vae = A.kl_vae(self.arch)
        with torch.no_grad():
            vae.quant_conv.bias[vae.config.latent_channels:] = self.initial_logvar
        return {"vae": vae}

    def loss(self, step, prepared, gen):
        vae = self.net("vae")
        x = self.pixels(self.images(prepared))
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen, device=self.device)
        out = vae.decode(z).sample.float()
        kl = 0.5 * (posterior.mean.float() ** 2 + posterior.var.float() - 1 - posterior.logvar.float()).mean()
        return _reconstruction_loss(out, x) + self.kl_weight * kl

    def finish(self, modules):
        vae = modules["vae"].eval()

        def encode(x):
            dist = vae.encode(x).latent_dist
            return dist.sample(), vae.decode(dist.mode()).sample

        _scale_and_save(self.run, "vae", vae, encode)


class DcaeStage(Stage):
    name = "dcae"
    lr = 1e-3
    batch = 128
    latent_weight = 1e-6

    def build(self):
        torch.manual_seed(self.run.seed + 1)
        return {"dcae": A.dc_vae(self.arch)}

    def loss(self, step, prepared, gen):
        dcae = self.net("dcae")
        x = self.pixels(self.images(prepared))
        z = dcae.encode(x).latent
        out = dcae.decode(z).sample.float()
        return _reconstruction_loss(out, x) + self.latent_weight * z.float().pow(2).mean()

    def finish(self, modules):
        dcae = modules["dcae"].eval()

        def encode(x):
            z = dcae.encode(x).latent
            return z, dcae.decode(z).sample

        _scale_and_save(self.run, "dcae", dcae, encode)


def _ensure_tokenizer(run: Run, name: str, write) -> Path:
    """The tokenizer is written once and kept: a text encoder's embedding rows are tied to its ids."""
    folder = run.models / name
    if not folder.is_dir():
        tmp = _fresh_tmp(folder)
        write(tmp)
        _replace_dir(tmp, folder)
    return folder


def _min_snr_weights(alphas_cumprod, t, gamma: float = 5.0):
    """Min-SNR-gamma loss weights (Hang et al. 2023) for a v-prediction loss, counted from SNR + 1 so the
    zero-SNR steps keep their weight: there v is minus the picture, and predicting it from the prompt
    alone is what places the objects."""
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t]).clamp(min=1e-8)
    return (snr + 1).clamp(max=gamma + 1) / (snr + 1)


class _SdNoiseStage(Stage):
    """What the SD UNet and its ControlNet share: the frozen VAE, CLIP text, DDPM noising, min-SNR v loss."""

    caption_dropout = 0.1

    def setup_sd(self):
        from diffusers import AutoencoderKL, DDPMScheduler
        from transformers import CLIPTokenizer

        self.vae = _frozen(AutoencoderKL.from_pretrained(self.run.models / "vae"), self.run)
        self.scaling = self.vae.config.scaling_factor
        train = {k: v for k, v in A.SD_SCHEDULER.items() if k in ("num_train_timesteps", "beta_start", "beta_end",
                                                                    "beta_schedule", "prediction_type",
                                                                    "rescale_betas_zero_snr")}
        self.noise = DDPMScheduler(**train)
        self.alphas = self.noise.alphas_cumprod.to(self.device)
        tok_dir = _ensure_tokenizer(self.run, "tokenizer",
                                    lambda folder: A.write_clip_tokenizer(folder, self.arch.clip_max_length))
        return CLIPTokenizer.from_pretrained(tok_dir)

    def prepare(self, step):
        prepared = super().prepare(step)
        prepared.captions = drop_captions([s.caption for s in prepared.scenes], self.caption_dropout)
        prepared.answers = self.text.ahead(prepared.captions)
        return prepared

    def noised(self, prepared, gen):
        """The pictures, their noised latents, the v target (diffusers' get_velocity) and the timesteps."""
        images = self.images(prepared)
        with torch.no_grad():
            dist = self.vae.encode(self.pixels(images)).latent_dist
            latents = (dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen, device=self.device))
            latents = latents.float() * self.scaling
        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=gen, device=self.device)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (b,), generator=gen, device=self.device)
        return images, self.noise.add_noise(latents, noise, t), self.noise.get_velocity(latents, noise, t), t

    def weighted_mse(self, pred, target, t):
        per_sample = (pred.float() - target).pow(2).flatten(1).mean(1)
        return (per_sample * _min_snr_weights(self.alphas, t)).mean()


class SdStage(_SdNoiseStage):
    name = "sd"
    lr = 5e-4
    batch = 256
    ema_decay = 0.998
    compiled_nets = ("unet",)

    def build(self):
        tokenizer = self.setup_sd()
        torch.manual_seed(self.run.seed + 2)
        text_encoder = A.clip_text_encoder(self.arch, len(tokenizer))
        unet = A.unet(self.arch)
        if self.run.cuda:
            unet = unet.to(memory_format=torch.channels_last)
        self.tokenizer = tokenizer
        self.text = ClipText(tokenizer, text_encoder)
        return {"text_encoder": text_encoder, "unet": unet}

    def loss(self, step, prepared, gen):
        _, noisy, target, t = self.noised(prepared, gen)
        embeds = self.text(prepared.captions, self.device)
        pred = self.net("unet")(noisy, t, encoder_hidden_states=embeds).sample
        return self.weighted_mse(pred, target, t)

    def finish(self, modules):
        save_pretrained(modules["text_encoder"], self.run.models / "text_encoder")
        save_pretrained(modules["unet"], self.run.models / "unet")


class ControlNetStage(_SdNoiseStage):
    name = "controlnet"
    lr = 4e-4  # its zero-initialised output convolutions must grow within a minute or two
    batch = 256
    ema_decay = 0.998
    caption_dropout = 0.3  # often steered by the edges alone
    compiled_nets = ("controlnet",)

    def build(self):
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        tokenizer = self.setup_sd()
        self.unet = _frozen(UNet2DConditionModel.from_pretrained(self.run.models / "unet"), self.run)
        text_encoder = _frozen(CLIPTextModel.from_pretrained(self.run.models / "text_encoder"), self.run)
        self.text = ClipText(tokenizer, text_encoder)
        net = A.controlnet(self.arch, self.unet)
        if self.run.cuda:
            net = net.to(memory_format=torch.channels_last)
        return {"controlnet": net}

    def loss(self, step, prepared, gen):
        images, noisy, target, t = self.noised(prepared, gen)
        control = S.canny(images)
        with torch.no_grad():
            embeds = self.text(prepared.captions, self.device)
        down, mid = self.net("controlnet")(noisy, t, encoder_hidden_states=embeds, controlnet_cond=control,
                                               return_dict=False)
        pred = self.unet(noisy, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample
        return self.weighted_mse(pred, target, t)

    def finish(self, modules):
        save_pretrained(modules["controlnet"], self.run.models / "controlnet")


class SanaStage(Stage):
    name = "sana"
    lr = 4e-4
    batch = 256
    ema_decay = 0.998
    caption_dropout = 0.1
    compiled_nets = ("transformer",)

    def build(self):
        from diffusers import AutoencoderDC
        from transformers import GemmaTokenizer

        self.dcae = _frozen(AutoencoderDC.from_pretrained(self.run.models / "dcae"), self.run)
        self.scaling = self.dcae.config.scaling_factor
        tok_dir = _ensure_tokenizer(self.run, "gemma_tokenizer", A.write_gemma_tokenizer)
        tokenizer = GemmaTokenizer.from_pretrained(tok_dir)
        torch.manual_seed(self.run.seed + 3)
        gemma = A.gemma_text_encoder(self.arch, len(tokenizer))
        transformer = A.sana_transformer(self.arch)
        self.text = GemmaText(tokenizer, gemma)
        return {"gemma": gemma, "transformer": transformer}

    def prepare(self, step):
        prepared = super().prepare(step)
        prepared.captions = drop_captions([s.caption for s in prepared.scenes], self.caption_dropout)
        prepared.answers = self.text.ahead(prepared.captions)
        return prepared

    def sigmas(self, b: int, gen) -> torch.Tensor:
        """Noise levels: mostly logit-normal (the middle, where the picture is decided), a fifth uniform,
        shifted as the scheduler's flow_shift shifts them at inference."""
        logit = torch.sigmoid(torch.randn(b, generator=gen, device=self.device))
        uniform = torch.rand(b, generator=gen, device=self.device)
        pick = torch.rand(b, generator=gen, device=self.device) < 0.2
        s = torch.where(pick, uniform, logit).clamp(1e-4, 1 - 1e-4)
        shift = A.SANA_FLOW_SHIFT
        return shift * s / (1 + (shift - 1) * s)

    def loss(self, step, prepared, gen):
        with torch.no_grad():
            latents = self.dcae.encode(self.pixels(self.images(prepared))).latent.float() * self.scaling
        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=gen, device=self.device)
        sigma = self.sigmas(b, gen)
        s = sigma[:, None, None, None]
        noisy = (1 - s) * latents + s * noise  # what FlowMatch / DPM-Solver flow sigmas do at sigma
        embeds, mask = self.text(prepared.captions, self.device, trim=True)
        scale = self.modules["transformer"].config.timestep_scale
        pred = self.net("transformer")(noisy, encoder_hidden_states=embeds, encoder_attention_mask=mask,
                                       timestep=sigma * 1000 * scale).sample
        return (pred.float() - (noise - latents)).pow(2).mean()

    def finish(self, modules):
        save_pretrained(modules["gemma"], self.run.models / "gemma")
        save_pretrained(modules["transformer"], self.run.models / "transformer")


STAGE_CLASSES = {c.name: c for c in (VaeStage, SdStage, ControlNetStage, DcaeStage, SanaStage)}


# ----- the loop -----

class _StepBatches(torch.utils.data.IterableDataset):
    """The prepared batches of steps start, start + 1, ...: with n data workers, worker k prepares steps
    start + k, start + k + n, ..., and the DataLoader, taking from its workers in turn, hands them out in order."""

    def __init__(self, prepare, start: int):
        self.prepare, self.start = prepare, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in itertools.count(self.start + k, n):
            yield step, self.prepare(step)


def prepared_batches(prepare, start: int, workers: int):
    """(step, prepared) from ``start`` on, prepared in ``workers`` processes (none: here, when asked). They
    are forked, so the stage's modules are neither copied nor pickled, and they never touch the GPU. In
    processes, not threads, so that their Python does not share an interpreter lock with the training loop's,
    which launches the GPU's work."""
    if workers and "fork" not in multiprocessing.get_all_start_methods():
        workers = 0
    loader = torch.utils.data.DataLoader(_StepBatches(prepare, start), batch_size=None, num_workers=workers,
                                         prefetch_factor=2 if workers else None,
                                         multiprocessing_context="fork" if workers else None)
    return iter(loader)


def _checkpoint_dir(run: Run, stage: str) -> Path:
    return run.work / stage / "ckpt"


def save_checkpoint(run: Run, stage: Stage, optim, ema, step: int, seconds: float) -> None:
    from safetensors.torch import save_file

    final = _checkpoint_dir(run, stage.name)
    tmp = _fresh_tmp(final)
    tmp.mkdir()
    for name, module in stage.modules.items():
        save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()},
                  str(tmp / f"{name}.safetensors"))
    if ema is not None:
        save_file({k: v.contiguous().cpu() for k, v in zip(stage.param_names, ema)}, str(tmp / "ema.safetensors"))
    torch.save(optim.state_dict(), tmp / "optimizer.pt")
    _write_json(tmp / "state.json", {"stage": stage.name, "arch": run.arch.name, "step": step,
                                     "seconds": round(seconds, 1), "batch": stage.batch})
    _replace_dir(tmp, final)


def load_checkpoint(run: Run, stage: Stage, optim, ema) -> tuple[int, float]:
    from safetensors.torch import load_file

    folder = _checkpoint_dir(run, stage.name)
    if not (folder / "state.json").is_file():
        old = folder.with_name(folder.name + ".old")  # a save that stopped between its two renames
        if not (old / "state.json").is_file():
            return 0, 0.0
        folder = old
    state = json.loads((folder / "state.json").read_text())
    if state["arch"] != run.arch.name:
        raise SystemExit(f"{folder} holds a {state['arch']} checkpoint; this run builds {run.arch.name} models "
                         f"(use another --work, or --tiny as before)")
    for name, module in stage.modules.items():
        module.load_state_dict(load_file(str(folder / f"{name}.safetensors"), device=str(run.device)))
    if ema is not None and (folder / "ema.safetensors").is_file():
        saved = load_file(str(folder / "ema.safetensors"), device=str(run.device))
        for k, v in zip(stage.param_names, ema):
            v.copy_(saved[k])
    optim.load_state_dict(torch.load(folder / "optimizer.pt", map_location=run.device, weights_only=True))
    return int(state["step"]), float(state["seconds"])


def _from_pretrained(cls, folder: Path, dtype):
    """Load a diffusers or transformers model in ``dtype`` (the two libraries name the argument differently)."""
    key = "dtype" if cls.__module__.startswith("transformers") else "torch_dtype"
    return cls.from_pretrained(folder, **{key: dtype})


def _warm_start(run: Run, stage: Stage, ema) -> bool:
    """With no checkpoint, a stage whose finished models exist (a finished run's, or imported with
    --init-from) continues from their weights, with a fresh optimizer. Says whether it did."""
    found = [n for n in stage.modules if (run.models / n).is_dir()]
    for name in found:
        module = stage.modules[name]
        saved = _from_pretrained(type(module), run.models / name, torch.float32).state_dict()
        module.load_state_dict(saved)
    if found:
        log(f"[{stage.name}] no checkpoint: starting from the finished {', '.join(found)} in {run.models}")
        if ema is not None:
            with torch.no_grad():
                for e, p in zip(ema, (p for m in stage.modules.values() for p in m.parameters())):
                    e.copy_(p)
    return bool(found)


IMPORTS = {  # exported folder -> {its subfolder: WORK/models folder}
    "demo-sd": {"vae": "vae", "tokenizer": "tokenizer", "text_encoder": "text_encoder", "unet": "unet"},
    "demo-controlnet-canny": {".": "controlnet"},
    "demo-sana": {"vae": "dcae", "tokenizer": "gemma_tokenizer", "text_encoder": "gemma",
                  "transformer": "transformer"},
}


def import_exports(source: Path, run: Run) -> None:
    """Fill WORK/models (in float32) from exported folders, for the models it does not hold yet: later
    stages can use them, and their own stages continue training from them."""
    import diffusers
    import transformers

    for folder, parts in IMPORTS.items():
        for sub, name in parts.items():
            src, dest = (source / folder / sub).resolve(), run.models / name
            if dest.is_dir() or not src.is_dir():
                continue
            if name.endswith("tokenizer"):
                tmp = _fresh_tmp(dest)
                shutil.copytree(src, tmp)
                _replace_dir(tmp, dest)
            else:
                config = json.loads((src / "config.json").read_text())
                class_name = config.get("_class_name") or config["architectures"][0]
                cls = getattr(diffusers, class_name, None) or getattr(transformers, class_name)
                save_pretrained(_from_pretrained(cls, src, torch.float32), dest)
            log(f"[init] {dest} <- {src}")


def _lr_factor(step: int, warmup: int, left: float) -> float:
    """Linear warmup, then constant, then a linear cool-down over the last fifth of the time (or steps) left."""
    return min(1.0, (step + 1) / max(warmup, 1)) * min(1.0, max(left / 0.2, 0.05))


def train_stage(run: Run, name: str, budget: float) -> None:
    """Train stage ``name`` for at most ``budget`` seconds (and run.max_steps steps), then save everything."""
    started = time.monotonic()
    for need in NEEDS.get(name, ()):
        if not _stage_done(run, need):
            raise SystemExit(f"stage '{name}' needs the finished '{need}' stage in {run.models}: run it first")
    stage = STAGE_CLASSES[name](run)
    stage.modules = modules = stage.build()
    for m in modules.values():
        m.to(run.device).train().requires_grad_(True)
    stage.param_names = [f"{mn}.{pn}" for mn, m in modules.items() for pn, _ in m.named_parameters()]
    params = [p for m in modules.values() for p in m.parameters()]
    optim = torch.optim.AdamW(params, lr=stage.lr, betas=(0.9, 0.99), weight_decay=0.01,
                              **({"fused": True} if run.cuda else {}))
    ema = [p.detach().clone().float() for p in params] if stage.ema_decay else None
    step, seconds = load_checkpoint(run, stage, optim, ema)
    warm = step == 0 and _warm_start(run, stage, ema)
    if run.compile:
        stage.compiled = {n: torch.compile(modules[n]) for n in stage.compiled_nets}
    counts = ", ".join(f"{n} {A.count(m) / 1e6:.3f}M" for n, m in modules.items())
    start = (f"resuming at step {step} ({seconds:.0f} s trained)" if step
             else "from the finished models' weights" if warm else "from scratch")
    log(f"[{name}] {counts}; batch {stage.batch}; {start}"
        + f"; budget {budget:.0f} s")
    first, last_save, last_log = step, time.monotonic(), time.monotonic()
    running, since = torch.zeros((), device=run.device), 0
    batches = prepared_batches(stage.prepare, step, run.workers)
    deadline = started + budget
    train_start = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            done = step - first
            if run.stop.is_set() or now >= deadline or (run.max_steps is not None and done >= run.max_steps):
                break
            left = (deadline - now) / max(deadline - train_start, 1e-6)
            if run.max_steps is not None:
                left = min(left, 1 - done / run.max_steps)
            lr = stage.lr * _lr_factor(step, run.warmup, left)
            for group in optim.param_groups:
                group["lr"] = lr
            got, prepared = next(batches)
            assert got == step, (got, step)
            if prepared.answers:
                stage.text.tokenizer.provide(prepared.answers)
            gen = run.generator(name, step)
            with run.autocast():
                loss = stage.loss(step, prepared, gen)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            optim.zero_grad(set_to_none=True)
            if ema is not None:
                decay = min(stage.ema_decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema, [p.detach().float() for p in params], 1 - decay)
            step += 1
            running += loss.detach().float()
            since += 1
            if step % run.log_every == 0:
                now = time.monotonic()
                mean = float(running) / since
                rate = since / (now - last_log)
                misses = getattr(getattr(stage, "text", None), "tokenizer", None)
                miss = f" tok-misses {misses.misses}" if misses is not None else ""
                log(f"[{name}] step {step} loss {mean:.4f} lr {lr:.2e} {rate:.1f} it/s {rate * stage.batch:.0f} img/s "
                    f"{now - started:.0f}/{budget:.0f} s{miss}")
                if not math.isfinite(mean):
                    raise SystemExit(f"[{name}] the loss is {mean}: stopping without saving over the checkpoint")
                running.zero_()
                since, last_log = 0, now
            if time.monotonic() - last_save > run.save_every and math.isfinite(float(running)):
                save_checkpoint(run, stage, optim, ema, step, seconds + time.monotonic() - train_start)
                last_save = time.monotonic()
    finally:
        del batches  # stops the data workers
    trained = seconds + time.monotonic() - train_start
    save_checkpoint(run, stage, optim, ema, step, trained)
    if ema is not None:  # the finished models are the EMA weights
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
    for m in modules.values():
        m.eval()
    stage.finish(modules)
    log(f"[{name}] stopped at step {step} ({step - first} this run, {trained:.0f} s in all); "
        f"checkpoint {_checkpoint_dir(run, name)}; models {run.models}")


# ----- export -----

def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def export(work: Path, out: Path) -> dict[str, int]:
    """fp16 diffusers folders of every finished model: demo-sd, demo-controlnet-canny, demo-sana."""
    from diffusers import (
        AutoencoderDC,
        AutoencoderKL,
        ControlNetModel,
        SanaPipeline,
        SanaTransformer2DModel,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTokenizer, Gemma2Model, GemmaTokenizer

    models = work / "models"
    out.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, int] = {}
    fp16 = torch.float16

    def have(*names):
        missing = [n for n in names if not (models / n).is_dir()]
        if missing:
            log(f"[export] skipped: {', '.join(missing)} not trained yet in {models}")
        return not missing

    def place(name: str, save) -> None:
        tmp = _fresh_tmp(out / name)
        save(tmp)
        _replace_dir(tmp, out / name)
        sizes[name] = _folder_bytes(out / name)

    if have("vae", "tokenizer", "text_encoder", "unet"):
        pipe = StableDiffusionPipeline(
            vae=AutoencoderKL.from_pretrained(models / "vae", torch_dtype=fp16),
            text_encoder=CLIPTextModel.from_pretrained(models / "text_encoder", dtype=fp16),
            tokenizer=CLIPTokenizer.from_pretrained(models / "tokenizer"),
            unet=UNet2DConditionModel.from_pretrained(models / "unet", torch_dtype=fp16),
            scheduler=A.sd_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        place("demo-sd", pipe.save_pretrained)
    if have("controlnet"):
        net = ControlNetModel.from_pretrained(models / "controlnet", torch_dtype=fp16)
        place("demo-controlnet-canny", net.save_pretrained)
    if have("dcae", "gemma_tokenizer", "gemma", "transformer"):
        pipe = SanaPipeline(
            tokenizer=GemmaTokenizer.from_pretrained(models / "gemma_tokenizer"),
            text_encoder=Gemma2Model.from_pretrained(models / "gemma", dtype=fp16),
            vae=AutoencoderDC.from_pretrained(models / "dcae", torch_dtype=fp16),
            transformer=SanaTransformer2DModel.from_pretrained(models / "transformer", torch_dtype=fp16),
            scheduler=A.sana_scheduler())
        place("demo-sana", pipe.save_pretrained)
    for name, size in sizes.items():
        log(f"[export] {out / name}: {size / 1e6:.2f} MB")
    total = sum(_folder_bytes(out / n) for n in EXPORTS if (out / n).is_dir())
    log(f"[export] all demo folders in {out}: {total / 1e6:.2f} MB" + ("  ** over the 25 MB budget **"
                                                                         if total > 25e6 else ""))
    return sizes


def pack(out: Path, dest: Path) -> list[Path]:
    """One uncompressed tar per exported folder (fp16 weights barely compress), for carrying them home."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXPORTS:
        if not (out / name).is_dir():
            continue
        path = dest / f"{name}.tar"
        tmp = path.with_name(path.name + ".tmp")
        with tarfile.open(tmp, "w") as tar:
            tar.add(out / name, arcname=name)
        os.replace(tmp, path)
        written.append(path)
        log(f"[pack] {path}: {path.stat().st_size / 2**20:.2f} MiB")
    return written


# ----- command line -----

def _parse_split(text: str | None, stages: list[str]) -> dict[str, float]:
    weights = {s: WEIGHTS[s] for s in stages}
    if text:
        for part in text.split(","):
            name, _, value = part.partition("=")
            if name.strip() not in weights:
                raise SystemExit(f"--split names '{name}', which is not among the stages run ({', '.join(stages)})")
            weights[name.strip()] = float(value)
    return weights


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_demo.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", default=None,
                   help="vae, sd, controlnet, dcae, sana, all, or a comma-separated list run in that order")
    p.add_argument("--work", type=Path, required=True, help="training folder: checkpoints and finished models")
    p.add_argument("--minutes", type=float, default=10.0,
                   help="training time for this command, shared among its stages (default 10)")
    p.add_argument("--split", default=None,
                   help="relative shares of --minutes, e.g. 'vae=1.5,sd=5.5,controlnet=1.5' (defaults: "
                        + ", ".join(f"{k}={v}" for k, v in WEIGHTS.items()) + ")")
    p.add_argument("--steps", type=int, default=None, help="at most this many steps per stage in this command")
    p.add_argument("--batch", type=int, default=None, help="batch size for every stage (default: per stage)")
    p.add_argument("--lr-scale", type=float, default=1.0, help="multiply every stage's learning rate")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="tiny models at 32x32: the whole run takes seconds on a CPU")
    p.add_argument("--log-every", type=int, default=None)
    p.add_argument("--save-every", type=float, default=2.0, help="minutes between checkpoints (default 2)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="exported folders (demo-sd, ...) to start from: they fill WORK/models where it has none")
    p.add_argument("--compile", action="store_true", help="torch.compile the trained denoiser (costs a minute)")
    p.add_argument("--workers", type=int, default=None,
                   help="data worker processes per training process (default: 0 on a CPU, else a quarter of the "
                        "CPU cores, at most 4)")
    p.add_argument("--parallel", action="store_true",
                   help="train the SD stages and the Sana stages at the same time, in two processes on one "
                        "device, each for the whole --minutes (these small models leave a GPU mostly idle)")
    p.add_argument("--export", action="store_true", help="write fp16 diffusers folders to --out")
    p.add_argument("--out", type=Path, default=None, help="where --export writes and --eval reads")
    p.add_argument("--pack", type=Path, default=None, help="after --export: a .tar of each exported folder here")
    p.add_argument("--eval", action="store_true", help="held-out figures of the exported models in --out")
    p.add_argument("--eval-count", type=int, default=64, help="pictures per figure (default 64)")
    p.add_argument("--eval-steps", type=int, default=20, help="sampling steps for --eval (default 20)")
    p.add_argument("--eval-pictures", type=Path, default=None,
                   help="--eval also writes eval-sd.png, eval-controlnet-canny.png, eval-sana.png here")
    args = p.parse_args(argv)
    if not (args.stage or args.export or args.eval or args.init_from):
        p.error("nothing to do: give --stage, --export, --eval or --init-from")
    if (args.export or args.eval) and args.out is None:
        p.error("--export and --eval need --out")
    return args


def _branch_argv(args: argparse.Namespace, stages: list[str], weights: dict[str, float]) -> list[str]:
    """The command line that trains ``stages`` alone, with this command's settings (no import, export, eval)."""
    argv = ["--stage", ",".join(stages), "--work", str(args.work), "--minutes", str(args.minutes),
            "--split", ",".join(f"{s}={weights[s]}" for s in stages), "--seed", str(args.seed),
            "--lr-scale", str(args.lr_scale), "--save-every", str(args.save_every)]
    for flag, value in (("--steps", args.steps), ("--batch", args.batch), ("--device", args.device),
                        ("--log-every", args.log_every), ("--workers", args.workers)):
        if value is not None:
            argv += [flag, str(value)]
    return argv + [flag for flag, on in (("--tiny", args.tiny), ("--compile", args.compile)) if on]


def train_in_parallel(args: argparse.Namespace, branches: list[list[str]], weights: dict[str, float],
                      run: Run) -> None:
    """Each branch in its own process (its own CUDA context and tokenizer thread), all at once; a stop
    request is passed on, so every branch saves its checkpoint."""
    import subprocess

    home = str(Path(__file__).resolve().parent.parent)  # where this package is, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (home, os.environ.get("PYTHONPATH")) if p)}
    children = [subprocess.Popen([sys.executable, "-m", "nodegraph_demo.train", *_branch_argv(args, b, weights)],
                                 env=env) for b in branches]
    stopped = False
    try:
        while any(c.poll() is None for c in children):
            if run.stop.is_set() and not stopped:
                for c in children:
                    c.send_signal(signal.SIGTERM)
                stopped = True
            time.sleep(0.2)
    finally:
        for c in children:
            if c.poll() is None:
                c.terminate()
                c.wait()
    failed = [" + ".join(b) for b, c in zip(branches, children) if c.returncode != 0]
    if failed:
        raise SystemExit(f"training failed for {', '.join(failed)} (see the log above)")


def _quiet() -> None:
    """No per-file progress bars or dtype-argument deprecation notes between the training logs."""
    import warnings

    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)


def _workers(asked: int | None, device: torch.device) -> int:
    """On a CPU the training itself needs the cores; on a GPU, enough workers to keep ahead of it."""
    if asked is not None:
        if asked < 0:
            raise SystemExit(f"--workers must be 0 or more, not {asked}")
        return asked
    return 0 if device.type == "cpu" else max(1, min(4, (os.cpu_count() or 4) // 4))


def main(argv=None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    arch = A.TINY if args.tiny else A.FULL
    run = Run(work=args.work, arch=arch, device=device, seed=args.seed, batch=args.batch or (4 if args.tiny else None),
              log_every=args.log_every or (1 if args.tiny else 50), save_every=args.save_every * 60,
              max_steps=args.steps, warmup=1 if args.tiny else 100, probe=(1, 8) if args.tiny else (4, 64),
              compile=args.compile, lr_scale=args.lr_scale, workers=_workers(args.workers, device))
    _quiet()
    # the data workers are forked after the tokenizers ran here: parallel tokenizers would warn in each
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if run.cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    threads = torch.get_num_threads()
    if args.tiny and not run.cuda:
        torch.set_num_threads(1)  # tiny ops take microseconds: a second thread only adds waiting (restored below)
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):  # stop cleanly: finish the step, save, then go on to export
        try:
            previous[sig] = signal.signal(sig, lambda *_: (log("[train] stop requested: saving"), run.stop.set()))
        except ValueError:  # not the main thread (a test calling main from a worker)
            pass
    try:
        if args.init_from:
            import_exports(args.init_from, run)
        if args.stage:
            stages = list(STAGES) if args.stage == "all" else [s.strip() for s in args.stage.split(",")]
            unknown = [s for s in stages if s not in STAGES]
            if unknown:
                raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}, all")
            weights = _parse_split(args.split, stages)
            args.work.mkdir(parents=True, exist_ok=True)
            log(f"[train] {', '.join(stages)} on {device} ({arch.name} models, {arch.image_size}px), "
                f"{args.minutes:g} min in all")
            branches = [[s for s in stages if s in b] for b in BRANCHES]
            if args.parallel and all(branches):
                train_in_parallel(args, branches, weights, run)
            else:
                for i, name in enumerate(stages):
                    if run.stop.is_set():
                        break
                    left = args.minutes * 60 - (time.monotonic() - started)
                    share = weights[name] / sum(weights[s] for s in stages[i:])
                    train_stage(run, name, max(left * share, 0.0))
        if args.export:
            export(args.work, args.out)
            if args.pack:
                pack(args.out, args.pack)
        if args.eval:
            from .evaluate import evaluate_exports

            evaluate_exports(args.out, device, count=args.eval_count, steps=args.eval_steps, seed=args.seed,
                             pictures=args.eval_pictures)
    finally:
        torch.set_num_threads(threads)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log(f"[train] done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
